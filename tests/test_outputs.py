"""mmdensenet.outputs: output files that never overwrite an input and are never half-written."""

import errno
import os
import stat
from pathlib import Path

import pytest

from mmdensenet.errors import ToolError
from mmdensenet.outputs import atomic_output, check_output, remove_leftovers, writable_folder


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


def test_atomic_output_is_on_disk_before_and_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced, real_fsync = [], os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f'/proc/self/fd/{fd}'), (tmp_path / 'out.pth').exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    with atomic_output(tmp_path / 'out.pth') as temporary:
        temporary.write_bytes(b'whole')
    assert synced == [(str(temporary), False), (str(tmp_path), True)]  # the file, then the rename


def test_atomic_output_where_folders_cannot_be_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    with atomic_output(tmp_path / 'out.pth') as temporary:
        temporary.write_bytes(b'whole')
    assert (tmp_path / 'out.pth').read_bytes() == b'whole'


def test_remove_leftovers_takes_only_what_atomic_output_of_that_file_left(tmp_path: Path) -> None:
    names = ['.out.pth.k1ll3d.pth', 'out.pth', '.out.pth', '.other.pth.k1ll3d.pth', '.out.pth.k1ll3d.png']
    for name in names:
        (tmp_path / name).write_bytes(b'x')
    remove_leftovers(tmp_path / 'out.pth')
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


def test_writable_folder(tmp_path: Path) -> None:
    assert writable_folder(tmp_path / 'new' / 'run', 'work_dir').is_dir()
    (tmp_path / 'file').write_text('')
    with pytest.raises(ToolError, match=r'work_dir .*file/run: '):
        writable_folder(tmp_path / 'file' / 'run', 'work_dir')
    with pytest.raises(ToolError, match=r'--show-dir .*file: a file, not a folder'):
        writable_folder(tmp_path / 'file', '--show-dir')
