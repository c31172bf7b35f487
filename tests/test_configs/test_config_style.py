"""Every classification config composes our own bases and says nothing its bases already say."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
# configs/detection/ and configs/segmentation/ inherit mmdet's and mmseg's configs; their own tests check them.
DOWNSTREAM = {'detection', 'segmentation'}
CLASSIFICATION = sorted(p for p in CONFIGS.rglob('*.py') if not DOWNSTREAM & set(p.relative_to(CONFIGS).parts))
TOP_LEVEL = [p for p in CLASSIFICATION if '_base_' not in p.relative_to(CONFIGS).parts]


def own_assignments(path: Path) -> dict:
    """The names a config file assigns itself, before mmengine merges its bases."""
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), 'exec'), {}, namespace)
    return namespace


def base_paths(path: Path) -> list[Path]:
    bases = own_assignments(path).get('_base_', [])
    return [(path.parent / base).resolve() for base in ([bases] if isinstance(bases, str) else bases)]


def plain(value: Any) -> Any:
    """Tuples as lists, as mmengine compares them."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def repeated_keys(own: dict, base: dict, prefix: str = '') -> Iterator[str]:
    for key, value in own.items():
        if key in ('_base_', '_delete_') or key not in base:
            continue
        if isinstance(value, dict) and isinstance(base[key], dict) and not value.get('_delete_'):
            yield from repeated_keys(value, base[key], f'{prefix}{key}.')
        elif plain(value) == plain(base[key]):
            yield f'{prefix}{key}'


def scoped_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if '_scope_' in value:
            yield str(value)
        for item in value.values():
            yield from scoped_keys(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from scoped_keys(item)


@pytest.mark.parametrize('path', CLASSIFICATION, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_uses_only_our_bases_and_repeats_nothing(path: Path) -> None:
    assert 'mmpretrain::' not in path.read_text()
    bases = base_paths(path)
    assert all(base.is_relative_to(CONFIGS) and base.is_file() for base in bases)
    merged_bases: dict = {}
    for base in bases:
        merged_bases.update(Config.fromfile(base).to_dict())
    assert list(repeated_keys(own_assignments(path), merged_bases)) == []
    cfg = Config.fromfile(path)
    assert list(scoped_keys(cfg.to_dict())) == []


@pytest.mark.parametrize('path', TOP_LEVEL, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_runnable_config_imports_our_models(path: Path) -> None:
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['mmdensenet'], allow_failed_imports=False)
    assert cfg.model.backbone.type == 'mmdensenet.DenseNet'


def test_the_docs_list_every_runnable_config() -> None:
    """The README, or a page of docs/, names each config."""
    listed = ''.join(page.read_text() for page in [REPO / 'README.md', *(REPO / 'docs').glob('*.md')])
    assert [p.name for p in TOP_LEVEL if p.name not in listed] == []
