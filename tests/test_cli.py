"""mmdensenet.cli: the shared plumbing of the tools."""

import os
from pathlib import Path

import pytest

from mmdensenet.cli import ToolError, refuse_overwriting_inputs, writable_folder


def test_refuse_overwriting_inputs(tmp_path: Path) -> None:
    source = tmp_path / 'input.pth'
    source.write_bytes(b'weights')
    os.link(source, tmp_path / 'hard_link.pth')
    (tmp_path / 'symlink.pth').symlink_to(source)
    (tmp_path / 'sub').mkdir()
    for out in (source, tmp_path / 'hard_link.pth', tmp_path / 'symlink.pth', tmp_path / 'sub' / '..' / 'input.pth'):
        with pytest.raises(ToolError, match='refusing to overwrite an input'):
            refuse_overwriting_inputs(out, tmp_path / 'config.py', source)
    refuse_overwriting_inputs(tmp_path / 'new.pth', source, None)  # a new file, or no input at all: fine
    (tmp_path / 'other.pth').write_bytes(b'weights')
    refuse_overwriting_inputs(tmp_path / 'other.pth', source)  # the same bytes are not the same file


def test_writable_folder(tmp_path: Path) -> None:
    assert writable_folder(tmp_path / 'new' / 'run', 'work_dir').is_dir()
    (tmp_path / 'file').write_text('')
    with pytest.raises(ToolError, match=r'work_dir .*file/run: '):
        writable_folder(tmp_path / 'file' / 'run', 'work_dir')
    with pytest.raises(ToolError, match=r'--show-dir .*file: a file, not a folder'):
        writable_folder(tmp_path / 'file', '--show-dir')
