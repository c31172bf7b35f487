"""mmdensenet.apis.inference: prediction, class names and the picture, in-process."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmpretrain.datasets.categories import CIFAR10_CATEGORIES, IMAGENET_CATEGORIES
from mmpretrain.registry import MODELS
from PIL import Image

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from mmdensenet.apis.inference import ImageClassification, Prediction, draw_predictions
from mmdensenet.errors import ToolError

REPO = Path(__file__).resolve().parents[2]
TOP = [4, 1, 8]  # the classes the head's biases put first, in this order


def write_config(path: Path, num_classes: int, extra: str = '') -> Path:
    path.write_text(
        f'_base_ = [{str(REPO / "configs" / "densenet121_4xb256_in1k.py")!r}]\n'
        'model = dict(backbone=dict(arch=dict(_delete_=True, growth_rate=8, depths=(1, 2), init_channels=16)),'
        f' head=dict(in_channels=28, num_classes={num_classes}))\n' + extra
    )
    return path


def write_checkpoint(path: Path, config: Path, **extra) -> Path:
    state_dict = MODELS.build(Config.fromfile(config).model).state_dict()
    state_dict['head.fc.weight'].zero_()
    state_dict['head.fc.bias'].zero_()
    state_dict['head.fc.bias'][TOP] = torch.tensor([3.0, 2.0, 1.0])
    torch.save(dict(state_dict=state_dict, **extra), path)
    return path


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)


def test_predict_ranks_and_scores(tmp_path: Path, image: np.ndarray) -> None:
    config = write_config(tmp_path / 'c.py', 10)
    classifier = ImageClassification(config, write_checkpoint(tmp_path / 'c.pth', config))
    predictions = classifier.predict(image, topk=3)
    logits = torch.zeros(10)
    logits[TOP] = torch.tensor([3.0, 2.0, 1.0])
    assert [p.label for p in predictions] == TOP
    assert [p.score for p in predictions] == pytest.approx(logits.softmax(0)[TOP].tolist(), abs=1e-5)
    assert len(classifier.predict(image, topk=50)) == 10


def test_predict_takes_a_path_and_reads_it_as_the_config_says(tmp_path: Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(tmp_path / 'image.png')
    config = write_config(tmp_path / 'c.py', 10)
    classifier = ImageClassification(config, write_checkpoint(tmp_path / 'c.pth', config))
    from_path = classifier.predict(str(tmp_path / 'image.png'), topk=3)
    assert from_path == classifier.predict(classifier.read(tmp_path / 'image.png'), topk=3)
    assert classifier.predict(tmp_path / 'image.png', topk=3) == from_path
    with pytest.raises(ToolError, match='image file not found'):
        classifier.predict(tmp_path / 'missing.png')


@pytest.mark.parametrize('topk', [0, -1, 2.5, '3', True])
def test_predict_refuses_a_topk_that_is_not_a_positive_whole_number(tmp_path: Path, image: np.ndarray, topk) -> None:
    config = write_config(tmp_path / 'c.py', 10)
    classifier = ImageClassification(config, write_checkpoint(tmp_path / 'c.pth', config))
    with pytest.raises(ToolError, match=f'topk must be a positive whole number, got {re.escape(repr(topk))}'):
        classifier.predict(image, topk=topk)


@pytest.mark.parametrize('shape', [(40, 30, 4), (0, 30, 3), (40,), (1, 40, 30, 3)])
def test_predict_refuses_arrays_that_are_not_images(tmp_path: Path, shape: tuple) -> None:
    config = write_config(tmp_path / 'c.py', 10)
    classifier = ImageClassification(config, write_checkpoint(tmp_path / 'c.pth', config))
    with pytest.raises(
        ToolError, match=re.escape(f'must be an array of shape (H, W) or (H, W, 3), as read gives it; got {shape}')
    ):
        classifier.predict(np.zeros(shape, np.uint8))


def test_predict_says_when_an_image_is_too_small_for_the_model(tmp_path: Path) -> None:
    """The digits net, its test pipeline without the resize: the net halves the image twice."""
    config = tmp_path / 'digits_at_own_size.py'
    config.write_text(
        f"_base_ = '{REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'}'\n"
        "test_pipeline = [dict(type='LoadImageFromFile', color_type='grayscale'), dict(type='PackInputs')]\n"
    )
    classifier = ImageClassification(config, write_checkpoint(tmp_path / 'digits.pth', config))
    assert len(classifier.predict(np.zeros((4, 4), np.uint8), topk=3)) == 3
    with pytest.raises(ToolError, match='the image is 3x2 pixels after the test pipeline, too small for the model'):
        classifier.predict(np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize(
    'num_classes, config_extra, meta, expected',
    [
        (1000, '', None, IMAGENET_CATEGORIES),  # the config's dataset type: ImageNet
        (10, "test_dataloader = dict(dataset=dict(type='CIFAR10'))\n", None, CIFAR10_CATEGORIES),
        (3, "test_dataloader = dict(dataset=dict(classes=['x', 'y', 'z']))\n", None, ('x', 'y', 'z')),
        (3, '', None, ('0', '1', '2')),  # ImageNet's 1000 names do not fit 3 classes
        (3, '', dict(dataset_meta=dict(classes=('a', 'b', 'c'))), ('a', 'b', 'c')),
    ],
)
def test_class_names(tmp_path: Path, num_classes: int, config_extra: str, meta, expected) -> None:
    config = write_config(tmp_path / 'c.py', max(num_classes, 9), config_extra)
    extra = {} if meta is None else dict(meta=meta)
    classifier = ImageClassification(config, write_checkpoint(tmp_path / 'c.pth', config, **extra))
    assert classifier.class_names(num_classes) == list(expected)


def test_loads_the_extras_of_mmengine_checkpoints(tmp_path: Path, image: np.ndarray) -> None:
    """The Runner also saves its message hub (HistoryBuffer, numpy arrays); weights-only loading allows them."""
    hub = MessageHub('test_inference')
    hub.update_scalar('train/loss', np.float64(0.5))
    config = write_config(tmp_path / 'c.py', 10)
    checkpoint = write_checkpoint(tmp_path / 'c.pth', config, message_hub=hub.state_dict())
    assert [p.label for p in ImageClassification(config, checkpoint).predict(image, topk=3)] == TOP


def test_checkpoint_that_does_not_fit(tmp_path: Path) -> None:
    config = write_config(tmp_path / 'c.py', 10)
    model = MODELS.build(Config.fromfile(config).model)
    torch.save(model.backbone.state_dict(), tmp_path / 'backbone.pth')
    with pytest.raises(ToolError, match=r'does not fit the model: \d+ tensors missing \(backbone\.'):
        ImageClassification(config, tmp_path / 'backbone.pth')


def test_read_follows_the_config(tmp_path: Path, image: np.ndarray) -> None:
    """BGR as mmpretrain's LoadImageFromFile gives it, or grey where the config's pipeline says so."""
    Image.fromarray(image).save(tmp_path / 'rgb.png')
    config = write_config(tmp_path / 'c.py', 10)
    classifier = ImageClassification(config, write_checkpoint(tmp_path / 'c.pth', config))
    assert np.array_equal(classifier.read(tmp_path / 'rgb.png'), image[..., ::-1])
    with pytest.raises(ToolError, match='image file not found'):
        classifier.read(tmp_path / 'missing.png')
    grey_loading = "test_pipeline = [dict(type='LoadImageFromFile', color_type='grayscale'), dict(type='PackInputs')]\n"
    grey_model = 'model = dict(backbone=dict(in_channels=1))\n'
    data_preprocessor = 'data_preprocessor = dict(mean=[127.5], std=[127.5], to_rgb=False)\n'
    grey = write_config(tmp_path / 'grey.py', 10, grey_loading + grey_model + data_preprocessor)
    classifier = ImageClassification(grey, write_checkpoint(tmp_path / 'grey.pth', grey))
    expected = np.asarray(Image.open(tmp_path / 'rgb.png').convert('L'))
    read = classifier.read(tmp_path / 'rgb.png')
    assert read.shape == image.shape[:2]
    assert np.abs(read.astype(int) - expected).max() <= 1  # OpenCV's and PIL's grey weights round apart
    assert [p.label for p in classifier.predict(read, topk=3)] == TOP


def test_draw_predictions(tmp_path: Path, image: np.ndarray) -> None:
    predictions = [Prediction(3, 'three', 0.7), Prediction(1, 'one', 0.2)]
    out = draw_predictions(image, predictions, tmp_path / 'sub' / 'pred.png')
    with Image.open(out) as picture:
        assert picture.format == 'PNG'
    draw_predictions(image[..., 0], predictions, tmp_path / 'sub' / 'pred.png')  # a grey image
    with pytest.raises(ToolError, match=r'must be a \.png'):
        draw_predictions(image, predictions, tmp_path / 'pred.jpg')
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['pred.png', 'sub']
