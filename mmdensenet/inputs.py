"""Checking the user's input files before reading them: regular files, and images of a sane size."""

import stat
import warnings
from pathlib import Path
from typing import Union

from PIL import Image

from .errors import ToolError

PathLike = Union[str, Path]

# What a path names that is not a regular file: reading a named pipe or a device blocks, or never ends.
OTHER_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a named pipe'), (stat.S_ISSOCK, 'a socket'))


def file_kind(path: Path) -> str:
    """What ``path`` names (through links): 'a file' (a regular one), 'a folder', 'a named pipe', 'a socket' or
    'a device'; an ``OSError`` where it names nothing or cannot be looked at."""
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return 'a file'
    return next((name for is_kind, name in OTHER_KINDS if is_kind(mode)), 'a device')


def require_file(path: PathLike, what: str) -> Path:
    """``path`` if it names a regular file (through links); else a ``ToolError`` naming it as ``what``."""
    path = Path(path)
    try:
        kind = file_kind(path)
    except OSError as error:
        if isinstance(error, (FileNotFoundError, NotADirectoryError)):
            raise ToolError(f'{what} not found: {path}') from None
        raise ToolError(f'cannot read {what} {path}: {error.strerror}') from None
    if kind != 'a file':
        raise ToolError(f'{what} {path} is {kind}, not a file; give the path of a file')
    return path


def check_image_pixels(path: PathLike) -> None:
    """Refuses an image whose header claims more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``, before decoding it.

    Decoding such an image, a corrupt or hostile one as a rule, takes gigabytes, and a pipeline
    without a resize passes it whole to the model. Only the header is read; files that PIL cannot
    open are left to the decoder, and ``PIL.Image.MAX_IMAGE_PIXELS = None`` turns the check off.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('error', Image.DecompressionBombWarning)
        try:
            Image.open(path).close()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ToolError(
                f'image {path}: its header claims more than {Image.MAX_IMAGE_PIXELS:,} pixels, the limit of '
                'PIL.Image.MAX_IMAGE_PIXELS; resize it, or raise that limit (in a module of custom_imports, say) '
                'if the image is genuine'
            ) from None
        except Exception:  # a format or a place PIL cannot open: the decoder reports a file it cannot read
            pass
