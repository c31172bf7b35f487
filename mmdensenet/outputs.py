"""Writing output files safely: never over an input, never half-written, on disk once written."""

import errno
import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

from .errors import ToolError, one_line

PathLike = Union[str, Path]


def check_output(out: PathLike, *inputs: Union[PathLike, None]) -> Path:
    """``out`` as a path; refuses, before any work, a folder or one of the existing ``inputs`` (also through links)."""
    out = Path(out)
    if out.is_dir():
        raise ToolError(f'the output {out} is a directory; give a file path')
    for path in filter(None, inputs):
        if out.exists() and Path(path).exists() and out.samefile(path):
            raise ToolError(f'refusing to overwrite an input: {out} is the input file {path}')
    return out


def writable_folder(path: PathLike, what: str) -> Path:
    """Creates the folder ``path`` if needed, or says in one line, naming it as ``what``, why it cannot take files."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ToolError(f'{what} {path}: a file, not a folder')
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # permissions, read-only mounts and quotas alike
    except OSError as error:
        raise ToolError(f'{what} {path}: {error.strerror or one_line(error)}') from None
    return path


def require_png(out_file: Path) -> Path:
    """``out_file`` if it names a PNG; the tools write PNG whatever the name says otherwise."""
    if out_file.suffix.lower() != '.png':
        raise ToolError(f'the output must be a .png file, got {out_file}')
    return out_file


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable, where the file system can sync a folder."""
    try:
        _fsync(folder)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.EACCES):
            raise


def remove_leftovers(out_file: Path) -> None:
    """Removes what killed writes of ``out_file`` through :func:`atomic_output` left beside it."""
    for leftover in out_file.parent.glob(f'.{glob.escape(out_file.name)}.*{glob.escape(out_file.suffix)}'):
        leftover.unlink(missing_ok=True)


@contextmanager
def atomic_output(out_file: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``out_file``, renamed to it only if the block succeeds.

    The file is flushed to disk before the rename and the rename after it, so that even a power
    cut leaves either the previous ``out_file`` or the complete new one.
    """
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{out_file.name}.', suffix=out_file.suffix, dir=out_file.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual permissions
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, out_file)
        _fsync_folder(out_file.parent)
    finally:
        tmp.unlink(missing_ok=True)
