"""tools/demo/image_demo.py with a tiny DenseNet whose head is set to rank known classes first."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.registry import MODELS
from PIL import Image

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from tests.cli_helpers import REPO, assert_one_line_error, run_tool
from tests.image_helpers import write_png_claiming

TOOL = 'demo/image_demo.py'
RANKED = [7, 3, 999, 0, 42]  # the classes the head's biases put first, in this order
BIASES = torch.tensor([6.0, 5.0, 4.0, 3.0, 2.0])


def write_config(path: Path, num_classes: int) -> Path:
    path.write_text(
        f'_base_ = [{str(REPO / "configs" / "densenet121_4xb256_in1k.py")!r}]\n'
        'model = dict(backbone=dict(arch=dict(_delete_=True, growth_rate=8, depths=(1, 2), init_channels=16)),'
        f' head=dict(in_channels=28, num_classes={num_classes}))\n'
    )
    return path


def write_checkpoint(path: Path, config: Path, **extra) -> Path:
    """Weights of the config's model with a head that ignores the image and ranks ``RANKED`` first."""
    model = MODELS.build(Config.fromfile(config).model)
    state_dict = model.state_dict()
    state_dict['head.fc.weight'].zero_()
    state_dict['head.fc.bias'].fill_(-10.0)
    ranked = [i for i, label in enumerate(RANKED) if label < len(state_dict['head.fc.bias'])]
    state_dict['head.fc.bias'][[RANKED[i] for i in ranked]] = BIASES[ranked]
    torch.save(dict(state_dict=state_dict, **extra), path)
    return path


def expected_scores(num_classes: int) -> list[float]:
    logits = torch.full((num_classes,), -10.0)
    logits[RANKED] = BIASES
    return logits.softmax(0)[RANKED].tolist()


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('demo')
    config = write_config(root / 'tiny_in1k.py', num_classes=1000)
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / 'cat.jpg')
    return dict(
        root=root, config=config, checkpoint=write_checkpoint(root / 'tiny.pth', config), image=root / 'cat.jpg'
    )


def parse_top(stdout: str) -> list[tuple[str, int, float]]:
    """(name, class, score) of each ranked line: '1. name (class 7): 12.34%'."""
    rows = []
    for line in stdout.splitlines()[1:-1]:
        name_and_class, score = line.split('. ', 1)[1].rsplit(': ', 1)
        name, label = name_and_class.rsplit(' (class ', 1)
        rows.append((name, int(label[:-1]), float(score[:-1]) / 100))
    return rows


def test_imagenet_names_and_a_picture(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / 'pred.png'
    result = run_tool(TOOL, files['config'], files['checkpoint'], files['image'], '--out', out)
    assert result.returncode == 0, result.stderr
    top = parse_top(result.stdout)
    assert [label for _, label, _ in top] == RANKED
    assert [name for name, _, _ in top] == [IMAGENET_CATEGORIES[i] for i in RANKED]
    assert [score for _, _, score in top] == pytest.approx(expected_scores(1000), abs=1e-4)
    assert result.stdout.splitlines()[-1] == f'prediction drawn to {out}'
    with Image.open(out) as picture:
        assert picture.format == 'PNG' and picture.width > picture.height > 200


def test_default_output_is_named_after_the_image(files: dict[str, Path], tmp_path: Path) -> None:
    result = run_tool(TOOL, files['config'], files['checkpoint'], files['image'], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'cat_pred.png').is_file()


def _garbage(path: Path) -> Path:
    path.write_bytes(b'\x89PNG not really')
    return path


class Payload:
    """Pickled with a checkpoint, it would run code on load; weights-only loading refuses it."""

    def __reduce__(self):
        return (print, ('pwned',))


@pytest.mark.parametrize(
    'argument, make, expected',
    [
        ('config', lambda tmp: tmp / 'missing.py', 'config file not found'),
        ('config', lambda tmp: _garbage(tmp / 'broken.py'), 'cannot read config'),
        ('checkpoint', lambda tmp: _garbage(tmp / 'broken.pth'), 'is not a PyTorch checkpoint'),
        ('image', lambda tmp: _garbage(tmp / 'broken.png'), 'cannot decode image'),
    ],
)
def test_bad_input_is_one_line(files: dict[str, Path], tmp_path: Path, argument: str, make, expected: str) -> None:
    paths = {**files, argument: make(tmp_path)}
    result = run_tool(TOOL, paths['config'], paths['checkpoint'], paths['image'], '--out', tmp_path / 'pred.png')
    assert_one_line_error(result, expected)
    assert not (tmp_path / 'pred.png').exists()


def test_never_overwrites_an_input(files: dict[str, Path], tmp_path: Path) -> None:
    image = tmp_path / 'cat.png'
    Image.open(files['image']).save(image)
    checkpoint = tmp_path / 'weights.png'  # a checkpoint under a PNG's name
    checkpoint.write_bytes(files['checkpoint'].read_bytes())
    for out in (image, checkpoint):
        before = out.read_bytes()
        result = run_tool(TOOL, files['config'], checkpoint, image, '--out', out)
        assert_one_line_error(result, 'refusing to overwrite an input')
        assert out.read_bytes() == before


def test_truncated_image_is_one_line(files: dict[str, Path], tmp_path: Path) -> None:
    """OpenCV and libpng would print warnings of their own before the error."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / 'whole.png')
    data = (tmp_path / 'whole.png').read_bytes()
    (tmp_path / 'truncated.png').write_bytes(data[: len(data) // 2])
    result = run_tool(
        TOOL, files['config'], files['checkpoint'], tmp_path / 'truncated.png', '--out', tmp_path / 'p.png'
    )
    assert_one_line_error(result, 'cannot decode image')
    assert not (tmp_path / 'p.png').exists()


DIGITS = REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'


@pytest.fixture(scope='module')
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkpoint = tmp_path_factory.mktemp('digits') / 'digits.pth'
    return write_checkpoint(checkpoint, DIGITS, meta=dict(dataset_meta=dict(classes=list('0123456789'))))


def _grey(path: Path, size: int) -> Path:
    Image.fromarray(np.zeros((size, size), np.uint8)).save(path)
    return path


def _pipe(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    'make, expected',
    [
        (lambda tmp: write_png_claiming(tmp / 'huge.png', 20000, 20000), 'huge.png: its header claims more than'),
        (lambda tmp: _pipe(tmp / 'pipe.png'), 'pipe.png is a named pipe, not a file'),
    ],
)
def test_images_the_model_cannot_take_are_one_line(digits_checkpoint: Path, tmp_path: Path, make, expected) -> None:
    out = tmp_path / 'pred.png'
    result = run_tool(TOOL, DIGITS, digits_checkpoint, make(tmp_path), '--out', out, timeout=300)
    assert_one_line_error(result, expected)
    assert not out.exists()


def test_a_one_pixel_image_is_resized_to_the_nets_size(digits_checkpoint: Path, tmp_path: Path) -> None:
    """The digits config's Resize brings any image to 8x8 (tests/test_apis/test_inference.py: one too small)."""
    out = tmp_path / 'pred.png'
    result = run_tool(TOOL, DIGITS, digits_checkpoint, _grey(tmp_path / 'dot.png', 1), '--out', out, '--topk', 2)
    assert result.returncode == 0, result.stderr
    assert len(parse_top(result.stdout)) == 2 and out.is_file()


def test_topk_must_be_positive(digits_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / 'pred.png'
    result = run_tool(TOOL, DIGITS, digits_checkpoint, _grey(tmp_path / 'digit.png', 8), '--out', out, '--topk', 0)
    assert_one_line_error(result, 'topk must be a positive whole number, got 0')
    assert not out.exists()


@pytest.mark.parametrize('mode', ['L', 'RGB'])
def test_reads_images_as_the_config_says_grey_for_the_digits(
    digits_checkpoint: Path, tmp_path: Path, mode: str
) -> None:
    """The digits demo's config loads images with color_type='grayscale'; a colour file is read as grey too."""
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(tmp_path / 'digit.png')
    out = tmp_path / 'digit_pred.png'
    result = run_tool(TOOL, DIGITS, digits_checkpoint, tmp_path / 'digit.png', '--out', out, '--topk', 3)
    assert result.returncode == 0, result.stderr
    assert [(name, label) for name, label, _ in parse_top(result.stdout)] == [('7', 7), ('3', 3), ('0', 0)]
    with Image.open(out) as picture:
        assert picture.format == 'PNG'


def test_checkpoints_are_loaded_weights_only(files: dict[str, Path], tmp_path: Path) -> None:
    unsafe = tmp_path / 'unsafe.pth'
    torch.save(dict(state_dict={}, payload=Payload()), unsafe)
    result = run_tool(TOOL, files['config'], unsafe, files['image'], '--out', tmp_path / 'pred.png')
    assert_one_line_error(result, 'refers to code')
    assert 'pwned' not in result.stdout


def test_checkpoint_of_another_model_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    ten_classes = MODELS.build(Config.fromfile(write_config(tmp_path / 'ten.py', num_classes=10)).model)
    torch.save(ten_classes.state_dict(), tmp_path / 'ten.pth')
    result = run_tool(TOOL, files['config'], tmp_path / 'ten.pth', files['image'], '--out', tmp_path / 'pred.png')
    assert_one_line_error(result, 'does not fit the model')
