"""Image files for the tests that no encoder would write."""

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def write_png_claiming(path: Path, width: int, height: int) -> Path:
    """A grey PNG of a few hundred bytes whose header claims ``width`` x ``height`` pixels (its data ends early)."""
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    rows = zlib.compress(b'\0' * (width + 1) * 4)  # the first 4 rows, black
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header) + _chunk(b'IDAT', rows) + _chunk(b'IEND', b''))
    return path
