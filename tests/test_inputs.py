"""mmdensenet.inputs: input files checked before they are read."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdensenet.errors import ToolError
from mmdensenet.inputs import check_image_pixels, require_file
from tests.image_helpers import write_png_claiming


def test_require_file_takes_files_and_names_anything_else(tmp_path: Path) -> None:
    (tmp_path / 'weights.pth').write_bytes(b'x')
    (tmp_path / 'link.pth').symlink_to(tmp_path / 'weights.pth')
    assert require_file(str(tmp_path / 'link.pth'), 'checkpoint') == tmp_path / 'link.pth'
    with pytest.raises(ToolError, match=f'checkpoint not found: {tmp_path / "missing.pth"}$'):
        require_file(tmp_path / 'missing.pth', 'checkpoint')
    with pytest.raises(ToolError, match='checkpoint not found'):
        require_file(tmp_path / 'weights.pth' / 'under_a_file.pth', 'checkpoint')
    with pytest.raises(ToolError, match=f'image file {tmp_path} is a folder, not a file'):
        require_file(tmp_path, 'image file')
    os.mkfifo(tmp_path / 'pipe')
    with pytest.raises(ToolError, match=f'config file {tmp_path / "pipe"} is a named pipe, not a file'):
        require_file(tmp_path / 'pipe', 'config file')


def test_images_claiming_too_many_pixels_are_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(tmp_path / 'small.png')
    check_image_pixels(tmp_path / 'small.png')
    huge = write_png_claiming(tmp_path / 'huge.png', 20000, 20000)
    with pytest.raises(ToolError, match=f'image {huge}: its header claims more than 89,478,485 pixels'):
        check_image_pixels(huge)
    # Over PIL's limit but below twice it, where PIL itself only warns.
    with pytest.raises(ToolError, match='claims more than'):
        check_image_pixels(write_png_claiming(tmp_path / 'large.png', 10000, 10000))
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', None)  # PIL's own way to allow any size
    check_image_pixels(huge)


def test_files_that_pil_cannot_open_are_left_to_the_decoder(tmp_path: Path) -> None:
    (tmp_path / 'not_an_image.png').write_bytes(b'\x89PNG not really')
    check_image_pixels(tmp_path / 'not_an_image.png')
    check_image_pixels(tmp_path / 'missing.png')
