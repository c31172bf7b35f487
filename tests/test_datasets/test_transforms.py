"""mmdensenet.datasets.transforms: ToGrayscale."""

import numpy as np
import pytest
from mmpretrain.registry import TRANSFORMS

from mmdensenet.datasets import ToGrayscale


def test_bgr_turns_grey_by_the_luma_weights() -> None:
    bgr = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    grey = ToGrayscale()(dict(img=bgr))['img']
    assert grey.shape == (9, 7) and grey.dtype == np.uint8
    luma = bgr.astype(np.float64) @ [0.114, 0.587, 0.299]
    np.testing.assert_allclose(grey, luma, rtol=0, atol=0.51)  # rounded, with OpenCV's fixed-point weights


@pytest.mark.parametrize('shape', [(9, 7), (9, 7, 1)])
def test_grey_images_are_left_alone(shape: tuple) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert ToGrayscale()(dict(img=image))['img'] is image


def test_other_channel_counts_are_refused() -> None:
    with pytest.raises(ValueError, match=r'a grey or BGR image, got one of shape \(9, 7, 4\)'):
        ToGrayscale()(dict(img=np.zeros((9, 7, 4), np.uint8)))


def test_mmpretrains_registry_finds_it_by_its_scope() -> None:
    assert isinstance(TRANSFORMS.build(dict(type='mmdensenet.ToGrayscale')), ToGrayscale)
