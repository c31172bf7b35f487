"""tools/deployment/export_onnx.py: a tiny classifier to ONNX, checked here with onnxruntime."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from cli_helpers import REPO, assert_one_line_error, run_tool

from mmdensenet.apis import build_model, load_config

TOOL = 'deployment/export_onnx.py'


@pytest.fixture(scope='module')
def classifier_and_checkpoint(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The tiny config's classifier with trained-looking BN statistics, saved as a checkpoint."""
    model = build_model(load_config(tiny_config))
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64), mode='tensor')  # moves the running statistics off 0 and 1
    model.eval()
    checkpoint = tmp_path_factory.mktemp('onnx') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, checkpoint)
    return model, checkpoint


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


def test_grey_config_exports_one_channel(tmp_path: Path) -> None:
    """The digits demo's config takes grey images."""
    out = tmp_path / 'digits.onnx'
    config = REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'
    result = run_tool(TOOL, config, out, '--img-size', 32)
    assert result.returncode == 0, result.stderr
    (images,) = onnx.load(str(out)).graph.input
    assert [d.dim_value for d in images.type.tensor_type.shape.dim][1:] == [1, 32, 32]


def test_unsupported_opset_is_one_line(tiny_config: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_tool(TOOL, tiny_config, tmp_path / 'o.onnx', '--opset', 999), '--opset must be from')
