"""Checking the user's input files before reading them."""

import stat
from pathlib import Path
from typing import Union

from .errors import ToolError

PathLike = Union[str, Path]

# What a path names that is not a regular file: reading a named pipe or a device blocks, or never ends.
OTHER_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a named pipe'), (stat.S_ISSOCK, 'a socket'))


def require_file(path: PathLike, what: str) -> Path:
    """``path`` if it names a regular file (through links); else a ``ToolError`` naming it as ``what``."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if isinstance(error, (FileNotFoundError, NotADirectoryError)):
            raise ToolError(f'{what} not found: {path}') from None
        raise ToolError(f'cannot read {what} {path}: {error.strerror}') from None
    if not stat.S_ISREG(mode):
        kind = next((name for is_kind, name in OTHER_KINDS if is_kind(mode)), 'a device')
        raise ToolError(f'{what} {path} is {kind}, not a file; give the path of a file')
    return path
