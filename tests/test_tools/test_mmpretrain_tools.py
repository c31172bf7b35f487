"""mmpretrain's own analysis tools on our configs and runs, through `mim run mmpretrain ...`."""

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.apis import get_model
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from sklearn.datasets import load_digits

from tests.cli_helpers import REPO, assert_ok, run

MIM = Path(sys.executable).with_name('mim')
DIGITS = REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'


def mim_run(*args: object):
    return run(MIM, 'run', 'mmpretrain', *args)


def test_print_config(tiny_config: Path) -> None:
    result = mim_run('print_config', tiny_config)
    assert_ok(result)
    assert "type='mmdensenet.DenseNet'" in result.stdout and 'growth_rate=8' in result.stdout


def test_confusion_matrix_of_a_checkpoint(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / 'confusion.pkl'
    picture = tmp_path / 'confusion.png'
    result = mim_run('confusion_matrix', tiny_config, trained / 'epoch_2.pth', '--out', out, '--show-path', picture)
    assert_ok(result)
    matrix = pickle.loads(out.read_bytes())
    assert tuple(matrix.shape) == (1000, 1000)  # the tiny config keeps ImageNet's 1000 classes
    assert matrix[:3].sum() == 6 and matrix[3:].sum() == 0  # the 6 validation images of classes 0 to 2
    with Image.open(picture) as image:
        assert image.format == 'PNG'


def test_analyze_logs_plots_our_scalar_log(trained: Path, tmp_path: Path) -> None:
    (log,) = trained.glob('*/vis_data/[0-9]*.json')
    out = tmp_path / 'curves.png'
    result = mim_run('analyze_logs', 'plot_curve', log, '--keys', 'loss', 'accuracy/top1', '--out', out)
    assert_ok(result)
    with Image.open(out) as image:
        assert image.format == 'PNG'


def test_browse_dataset_draws_the_images(tiny_config: Path, tmp_path: Path) -> None:
    """Its 'original' mode; the others fail in mmpretrain's own make_grid on matplotlib 3.10 and later."""
    out = tmp_path / 'browse'
    result = mim_run('browse_dataset', tiny_config, '--output-dir', out, '--not-show', '--phase', 'train',
                     '--show-number', 3, '--mode', 'original')  # fmt: skip
    assert_ok(result)
    assert sorted(p.name for p in out.iterdir()) == ['train_0.png', 'train_1.png', 'train_2.png']


@pytest.fixture(scope='module')
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits demo's model with random weights, saved as mmengine saves a model's weights.

    Seeded: some random nets give the digit an all-zero map (every channel's gradient-weighted sum
    negative), which the test below refuses as saying nothing.
    """
    torch.manual_seed(2)
    model = get_model(Config.fromfile(DIGITS))
    path = tmp_path_factory.mktemp('digits') / 'random.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def test_vis_cam_draws_the_grad_cam_of_densenets_last_features_over_the_image(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    """The map of the final BN-ReLU (feature_info's last module), the layer the docs give, over a digit."""
    image_path, out = tmp_path / 'digit.png', tmp_path / 'cam.png'
    digit = np.rint(load_digits().images[7] * (255 / 16)).astype(np.uint8)
    Image.fromarray(digit, mode='L').save(image_path)
    model = get_model(Config.fromfile(DIGITS), str(digits_checkpoint))
    layer = 'backbone.' + model.backbone.feature_info[-1]['module']
    assert layer == 'backbone.transitions.2.1'

    result = mim_run('vis_cam', image_path, DIGITS, digits_checkpoint, '--target-layers', layer, '--save-path', out)
    assert_ok(result)
    with Image.open(out) as picture:
        assert (picture.format, picture.mode, picture.size) == ('PNG', 'RGB', (8, 8))  # the digit's size
        drawn = np.asarray(picture)
    assert np.asarray(Image.open(image_path)).tolist() == digit.tolist()  # the input is untouched

    # The same Grad-CAM computed here, then blended half and half with the digit as grad-cam does.
    inputs = model.data_preprocessor(dict(inputs=[torch.from_numpy(digit)[None]]), False)['inputs']
    cam = GradCAM(model, [model.get_submodule(layer)])(inputs)[0]
    assert cam.max() > cam.min()  # a map with something in it
    expected = show_cam_on_image(np.repeat(digit[..., None] / 255, 3, axis=2).astype(np.float32), cam)
    assert np.abs(drawn.astype(int) - expected[..., ::-1]).max() <= 1  # written as BGR, read as RGB
    assert (drawn[..., 0] != drawn[..., 2]).any()  # coloured: the heat map lies over the grey digit
