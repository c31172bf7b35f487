"""mmdensenet.LoadImageFromFile: mmcv's, with the image's size checked before it is decoded."""

from pathlib import Path

import numpy as np
import pytest
from image_helpers import write_png_claiming
from mmpretrain.registry import TRANSFORMS
from PIL import Image

import mmdensenet  # noqa: F401  (registers mmdensenet.LoadImageFromFile)
from mmdensenet.errors import ToolError


def test_loads_as_mmcv_does_from_any_scope(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / 'rgb.png')
    ours = TRANSFORMS.build(dict(type='mmdensenet.LoadImageFromFile', color_type='grayscale'))
    mmcvs = TRANSFORMS.build(dict(type='LoadImageFromFile', color_type='grayscale'))
    loaded = ours(dict(img_path=str(tmp_path / 'rgb.png')))
    assert np.array_equal(loaded['img'], mmcvs(dict(img_path=str(tmp_path / 'rgb.png')))['img'])
    assert loaded['img_shape'] == loaded['ori_shape'] == (6, 5)


def test_refuses_an_image_claiming_too_many_pixels(tmp_path: Path) -> None:
    huge = write_png_claiming(tmp_path / 'huge.png', 20000, 20000)
    load = TRANSFORMS.build(dict(type='mmdensenet.LoadImageFromFile', color_type='grayscale'))
    with pytest.raises(ToolError, match=f'image {huge}: its header claims more than'):
        load(dict(img_path=str(huge)))
