"""The README and docs/ pages: every relative link reaches a file of the checkout, and a heading there."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def prose(page: Path) -> str:
    """The page without its fenced code blocks, where brackets are code, not links."""
    return re.sub(r'^```.*?^```', '', page.read_text(encoding='utf-8'), flags=re.DOTALL | re.MULTILINE)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, spaces as hyphens, other punctuation dropped."""
    headings = re.findall(r'^#+ (.+)$', prose(page), flags=re.MULTILINE)
    return {re.sub(r'[^\w\- ]', '', heading.lower()).replace(' ', '-') for heading in headings}


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page)) if not re.match(r'[a-z]+:', target)]


def reaches(page: Path, target: str) -> bool:
    """Whether ``target``, a link of ``page``, names a file of the checkout and, after a #, a heading of it."""
    path, _, anchor = target.partition('#')
    linked = (page.parent / path).resolve() if path else page
    if not linked.is_relative_to(REPO) or not linked.exists():
        return False
    return not anchor or (linked.suffix == '.md' and anchor in anchors(linked))


@pytest.mark.parametrize('page', PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_reach_a_file_and_heading(page: Path) -> None:
    broken = [target for target in relative_links(page) if not reaches(page, target)]
    assert broken == [], broken


def test_the_pages_link_to_one_another() -> None:
    """Every docs page is reachable from the README."""
    linked = {(REPO / target.partition('#')[0]).resolve() for target in relative_links(REPO / 'README.md')}
    assert [page.name for page in PAGES[1:] if page not in linked] == []
