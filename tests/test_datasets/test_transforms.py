"""mmdensenet.datasets.transforms: LoadImageFromFile (mmcv's, with the image's size checked before it is
decoded), ToGrayscale, and the digits config's files in mmpretrain's own inferencer."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmpretrain import ImageClassificationInferencer
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from mmdensenet.apis import ImageClassification, build_model, load_config
from mmdensenet.datasets import ToGrayscale
from mmdensenet.errors import ToolError
from tests.image_helpers import write_png_claiming

DIGITS = Path(__file__).resolve().parents[2] / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'


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


@pytest.fixture(scope='module')
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits config's model with random weights and BN statistics off 0 and 1, as tools/train.py saves it."""
    model = build_model(load_config(DIGITS))
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 1, 8, 8), mode='tensor')
    checkpoint = tmp_path_factory.mktemp('digits') / 'digits.pth'
    meta = {'dataset_meta': {'classes': [str(i) for i in range(10)]}}
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, checkpoint)
    return checkpoint


@pytest.mark.parametrize('colour, size, tolerance', [(False, 8, 1e-6), (False, 24, 1e-6), (True, 24, 1e-3)])
def test_mmpretrains_inferencer_reads_a_digit_file_as_our_inference_does(
    digits_checkpoint: Path, tmp_path: Path, colour: bool, size: int, tolerance: float
) -> None:
    """mmpretrain reads the file in colour; ToGrayscale and Resize make it the 8x8 grey image we read.

    A grey file gives the same pixels; a colour one may differ by a grey level here and there, as
    libpng, which reads a PNG grey for us, rounds its own way.
    """
    png = tmp_path / 'digit.png'
    pixels = np.random.default_rng(0).integers(0, 64, (size, size, 3), dtype=np.uint8)  # a noisy background
    pixels[size // 4 : -size // 4, size // 3 : -size // 3] = (40, 160, 250)  # an orange bar: a rough "1"
    cv2.imwrite(str(png), pixels if colour else cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY))
    (theirs,) = ImageClassificationInferencer(model=str(DIGITS), pretrained=str(digits_checkpoint), device='cpu')(
        str(png)
    )
    ours = ImageClassification(DIGITS, digits_checkpoint)
    predictions = ours.predict(ours.read(png), topk=10)
    scores = np.zeros(10, np.float32)
    for prediction in predictions:
        scores[prediction.label] = prediction.score
    np.testing.assert_allclose(theirs['pred_scores'], scores, rtol=0, atol=tolerance)
    assert theirs['pred_label'] == predictions[0].label and theirs['pred_class'] == predictions[0].name
    assert not np.allclose(scores, scores[0], rtol=0, atol=0.01)  # the weights tell the classes apart


def test_an_image_given_as_pixels_passes_through() -> None:
    """mmpretrain's inferencers drop only steps named LoadImageFromFile and pass the pixels they read."""
    image = np.zeros((6, 5), np.uint8)
    load = TRANSFORMS.build(dict(type='mmdensenet.LoadImageFromFile', color_type='grayscale'))
    assert load(dict(img=image))['img'] is image
