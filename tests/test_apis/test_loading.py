"""Checkpoints for load_from and resume: read weights-only as mmengine would take them, checked against the model."""

from pathlib import Path

import pytest
import torch
from torch import nn

from mmdensenet.apis.loading import Checkpoint, check_fits, checkpoint_source, checkpoint_to_load, unwrapped
from mmdensenet.errors import ToolError
from tests.weight_helpers import RunsCommand


def small_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_reads_what_mmengine_loads(tmp_path: Path) -> None:
    state_dict = small_model().state_dict()
    path = tmp_path / 'ddp.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in state_dict.items()}, 'meta': {'epoch': 1}}, path)
    checkpoint = Checkpoint.read(str(path))
    assert checkpoint.state_dict.keys() == state_dict.keys()  # mmengine strips the DDP prefix
    check_fits(small_model(), checkpoint.state_dict, checkpoint.path)
    torch.save(state_dict, tmp_path / 'bare.pth')
    assert Checkpoint.read(str(tmp_path / 'bare.pth')).state_dict.keys() == state_dict.keys()
    # mmengine does not look under 'model': such a file would load nothing.
    torch.save({'model': state_dict}, tmp_path / 'model.pth')
    with pytest.raises(ToolError, match=r"load_from: .* 'model' is not a named tensor"):
        Checkpoint.read(str(tmp_path / 'model.pth'), 'load_from')


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match='checkpoint not found'):
        Checkpoint.read(str(tmp_path / 'missing.pth'))
    torch.save({'state_dict': {}, 'x': RunsCommand(f'touch {tmp_path / "pwned"}')}, tmp_path / 'hostile.pth')
    with pytest.raises(ToolError, match='refers to code') as info:
        Checkpoint.read(str(tmp_path / 'hostile.pth'))
    assert 'weights_only' not in str(info.value) and not (tmp_path / 'pwned').exists()
    torch.save({'state_dict': small_model().state_dict()}, tmp_path / 'weights.pth')
    with pytest.raises(ToolError, match=r'holds no training state \(meta\.epoch, meta\.iter\)'):
        Checkpoint.read(str(tmp_path / 'weights.pth')).check_resumable()


def test_checkpoint_source_is_a_url_or_a_local_file(tmp_path: Path) -> None:
    (tmp_path / 'weights.pth').write_bytes(b'x')
    url = 'https://example.com/epoch_1.pth'  # fetched when read
    assert checkpoint_source(url) == url
    assert checkpoint_source(str(tmp_path / 'weights.pth')) == str(tmp_path / 'weights.pth')
    assert checkpoint_source(f'file://{tmp_path}/weights.pth') == str(tmp_path / 'weights.pth')
    assert checkpoint_source(f'file://localhost{tmp_path}/weights.pth') == str(tmp_path / 'weights.pth')
    with pytest.raises(ToolError, match=f'load_from not found: {tmp_path}/missing.pth'):
        checkpoint_source(f'file://{tmp_path}/missing.pth', 'load_from')
    with pytest.raises(ToolError, match='read from a local file or an http'):
        checkpoint_source('torchvision://densenet121', 'load_from')
    with pytest.raises(ToolError, match='read from a local file or an http'):
        checkpoint_source(f'file://elsewhere{tmp_path}/weights.pth')


def test_a_file_url_loads_the_file(tmp_path: Path) -> None:
    torch.save(small_model().state_dict(), tmp_path / 'weights.pth')
    checkpoint = Checkpoint.read(f'file://{tmp_path}/weights.pth', 'load_from')
    assert checkpoint.path == str(tmp_path / 'weights.pth')  # what the Runner is given to load
    assert checkpoint.state_dict.keys() == small_model().state_dict().keys()


def test_check_fits_lists_missing_unexpected_and_resized() -> None:
    state_dict = small_model().state_dict()
    state_dict['2.weight'] = torch.zeros(3, 4)
    del state_dict['0.bias']
    state_dict['extra'] = torch.zeros(1)
    message = (
        r'checkpoint c\.pth does not fit the model: 1 missing keys \(e\.g\. 0\.bias\), '
        r'1 unexpected keys \(e\.g\. extra\), 1 tensors of another shape \(e\.g\. 2\.weight: '
        r'\(3, 4\) in the file, \(2, 4\) in the model\)'
    )
    with pytest.raises(ToolError, match=message):
        check_fits(small_model(), state_dict, 'c.pth')


def test_unwrapped_reaches_the_model_inside_wrappers() -> None:
    from mmpretrain.models import AverageClsScoreTTA

    model = small_model()
    model.test_step = lambda data: data  # what a test-time-augmentation wrapper asks of its module
    assert unwrapped(AverageClsScoreTTA(module=model)) is model
    assert unwrapped(model) is model


def test_checkpoint_to_load_is_what_the_runner_picks(tmp_path: Path) -> None:
    assert checkpoint_to_load('a.pth', True, str(tmp_path)) == 'a.pth'
    assert checkpoint_to_load(None, False, str(tmp_path)) is None
    assert checkpoint_to_load(None, True, str(tmp_path)) is None  # nothing to resume: a fresh start
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    assert checkpoint_to_load(None, True, str(tmp_path)) == str(tmp_path / 'epoch_3.pth')
