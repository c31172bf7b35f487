"""tools/deployment/export_onnx.py: a tiny classifier to ONNX, checked here with onnxruntime."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from mmdensenet.apis import build_model, load_config
from tests.cli_helpers import REPO, assert_one_line_error, run_tool

TOOL = 'deployment/export_onnx.py'


DIGITS_CONFIG = REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'


def saved_with_statistics(config: Path, shape: tuple[int, int, int], folder: Path) -> tuple:
    """The config's classifier with random weights and running statistics off 0 and 1, and its checkpoint."""
    model = build_model(load_config(config))
    model.train()
    with torch.no_grad():
        model(torch.randn(4, *shape), mode='tensor')
    model.eval()
    checkpoint = folder / f'{config.stem}.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, checkpoint)
    return model, checkpoint


@pytest.fixture(scope='module')
def classifier_and_checkpoint(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The tiny config's classifier with trained-looking BN statistics, saved as a checkpoint."""
    return saved_with_statistics(tiny_config, (3, 64, 64), tmp_path_factory.mktemp('onnx'))


def test_exported_logits_match_pytorch_with_a_dynamic_batch(classifier_and_checkpoint, tiny_config, tmp_path) -> None:
    model, checkpoint = classifier_and_checkpoint
    out = tmp_path / 'tiny.onnx'
    result = run_tool(TOOL, tiny_config, checkpoint, out, '--img-size', 64)
    assert result.returncode == 0, result.stderr
    assert 'onnxruntime matches PyTorch' in result.stdout
    onnx.checker.check_model(str(out))
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    images = torch.randn(3, 3, 64, 64)
    (logits,) = session.run(['logits'], {'images': images.numpy()})
    with torch.no_grad():
        expected = model(images, mode='tensor').numpy()
    assert logits.shape == (3, 1000)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


def test_without_a_checkpoint_exports_random_weights(tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / 'random.onnx'
    result = run_tool(TOOL, tiny_config, out, '--img-size', 32)
    assert result.returncode == 0, result.stderr
    assert 'random weights' in result.stdout
    onnx.checker.check_model(str(out))


def test_bad_checkpoints_fail_with_one_line_and_write_nothing(classifier_and_checkpoint, tiny_config, tmp_path) -> None:
    _, checkpoint = classifier_and_checkpoint
    not_a_checkpoint = tmp_path / 'notes.pth'
    not_a_checkpoint.write_text('not a checkpoint')
    wrong_net = tmp_path / 'wrong.pth'
    torch.save({'backbone.stem.0.weight': torch.zeros(1)}, wrong_net)
    out = tmp_path / 'out.onnx'
    assert_one_line_error(run_tool(TOOL, tiny_config, not_a_checkpoint, out), 'is not a PyTorch checkpoint')
    assert_one_line_error(run_tool(TOOL, tiny_config, wrong_net, out), 'does not fit the model')
    assert_one_line_error(run_tool(TOOL, tmp_path / 'missing.py', out), 'config file not found')
    assert not out.exists()
    before = checkpoint.read_bytes()
    onnx_named_checkpoint = tmp_path / 'weights.onnx'
    onnx_named_checkpoint.write_bytes(before)
    assert_one_line_error(
        run_tool(TOOL, tiny_config, onnx_named_checkpoint, onnx_named_checkpoint), 'refusing to overwrite an input'
    )
    assert onnx_named_checkpoint.read_bytes() == before


@pytest.mark.parametrize('config, shape', [('digits', (1, 8, 8)), ('cifar', (3, 32, 32))])
def test_configs_export_at_their_own_size(config: str, shape: tuple, tiny_cifar_config: Path, tmp_path: Path) -> None:
    """Without --img-size: the digits' 8x8 grey images and CIFAR's 32x32 ones, the CIFAR stem's stride 4."""
    config = DIGITS_CONFIG if config == 'digits' else tiny_cifar_config
    model, checkpoint = saved_with_statistics(config, shape, tmp_path)
    out = tmp_path / 'net.onnx'
    result = run_tool(TOOL, config, checkpoint, out)
    assert result.returncode == 0, result.stderr
    assert f'images (N, {", ".join(map(str, shape))})' in result.stdout
    (images,) = onnx.load(str(out)).graph.input
    assert [d.dim_value for d in images.type.tensor_type.shape.dim][1:] == list(shape)
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    batch = torch.randn(5, *shape)
    (logits,) = session.run(['logits'], {'images': batch.numpy()})
    with torch.no_grad():
        expected = model(batch, mode='tensor').numpy()
    assert logits.shape == (5, 10)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


def test_the_smallest_size_is_the_nets_stride(tmp_path: Path) -> None:
    """The digits net (CIFAR stem, three blocks) has stride 4: 4x4 exports, 3x3 is refused."""
    out = tmp_path / 'digits.onnx'
    result = run_tool(TOOL, DIGITS_CONFIG, out, '--img-size', 4)
    assert result.returncode == 0, result.stderr
    (images,) = onnx.load(str(out)).graph.input
    assert [d.dim_value for d in images.type.tensor_type.shape.dim][1:] == [1, 4, 4]
    too_small = tmp_path / 'too_small.onnx'
    assert_one_line_error(
        run_tool(TOOL, DIGITS_CONFIG, too_small, '--img-size', 8, 3),
        '--img-size 8x3 is smaller than the net, whose stride is 4',
    )
    assert not too_small.exists()


@pytest.mark.parametrize(
    'args, expected',
    [
        (('--tolerance', 'nan'), '--tolerance must be a finite number, 0 or more, got nan'),
        (('--tolerance', '-1'), '--tolerance must be a finite number, 0 or more, got -1'),
        (('--tolerance', 'inf'), '--tolerance must be a finite number, 0 or more, got inf'),
        (('--img-size', 8, 8, 8), '--img-size takes one or two positive sizes'),
        (('--img-size', 0), '--img-size takes one or two positive sizes'),
        (('--opset', 0), '--opset must be a positive version, got 0'),
        (('--opset', 21), 'ONNX export at --opset 21 failed: Exporting to ONNX opset version 21 is not supported'),
        (('--opset', 6), 'onnxruntime cannot run the model exported at --opset 6: '),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(
    tiny_config: Path, tmp_path: Path, args: tuple, expected: str
) -> None:
    out = tmp_path / 'o.onnx'
    assert_one_line_error(run_tool(TOOL, tiny_config, out, *args), expected)
    assert list(tmp_path.iterdir()) == []
