"""mmdensenet.outputs: output files that never overwrite an input and are never half-written."""

import os
from pathlib import Path

import pytest

from mmdensenet.errors import ToolError
from mmdensenet.outputs import atomic_output, check_output, writable_folder


def test_check_output_refuses_inputs_and_folders(tmp_path: Path) -> None:
    source = tmp_path / 'input.pth'
    source.write_bytes(b'weights')
    os.link(source, tmp_path / 'hard_link.pth')
    (tmp_path / 'symlink.pth').symlink_to(source)
    (tmp_path / 'sub').mkdir()
    for out in (source, tmp_path / 'hard_link.pth', tmp_path / 'symlink.pth', tmp_path / 'sub' / '..' / 'input.pth'):
        with pytest.raises(ToolError, match='refusing to overwrite an input'):
            check_output(out, tmp_path / 'config.py', source)
    check_output(tmp_path / 'new.pth', source, None)  # a new file, or no input at all: fine
    (tmp_path / 'other.pth').write_bytes(b'weights')
    check_output(tmp_path / 'other.pth', source)  # the same bytes are not the same file
    with pytest.raises(ToolError, match=f'the output {tmp_path / "sub"} is a directory'):
        check_output(tmp_path / 'sub', source)


def test_atomic_output_writes_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / 'new' / 'chart.png'
    with pytest.raises(RuntimeError), atomic_output(out) as temporary:
        temporary.write_bytes(b'half')
        raise RuntimeError('failed midway')
    assert list(out.parent.iterdir()) == []
    with atomic_output(out) as temporary:
        temporary.write_bytes(b'whole')
    assert out.read_bytes() == b'whole' and list(out.parent.iterdir()) == [out]


def test_writable_folder(tmp_path: Path) -> None:
    assert writable_folder(tmp_path / 'new' / 'run', 'work_dir').is_dir()
    (tmp_path / 'file').write_text('')
    with pytest.raises(ToolError, match=r'work_dir .*file/run: '):
        writable_folder(tmp_path / 'file' / 'run', 'work_dir')
    with pytest.raises(ToolError, match=r'--show-dir .*file: a file, not a folder'):
        writable_folder(tmp_path / 'file', '--show-dir')
