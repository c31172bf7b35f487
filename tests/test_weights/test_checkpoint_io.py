"""Checkpoint files: reading untrusted ones, checking them against a model, writing them atomically."""

import hashlib
import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from mmdensenet.errors import ToolError
from mmdensenet.weights import CheckpointError, read_checkpoint, save_atomically, unwrap_state_dict
from mmdensenet.weights.checkpoint_io import Checkpoint, check_fit, check_resumable, check_values, checkpoint_source
from tests.weight_helpers import RunsCommand


def test_read_returns_the_checkpoint_and_the_file_hash(tmp_path: Path) -> None:
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.arange(3)}, 'meta': {'epoch': 2}}, path)
    checkpoint, digest = read_checkpoint(str(path))
    assert torch.equal(checkpoint['state_dict']['w'], torch.arange(3)) and checkpoint['meta'] == {'epoch': 2}
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_refuses_code_and_garbage(tmp_path: Path) -> None:
    marker = tmp_path / 'code_ran'
    malicious = tmp_path / 'malicious.pth'
    torch.save({'w': torch.zeros(1), 'payload': RunsCommand(f'touch {marker}')}, malicious)
    with pytest.raises(CheckpointError, match=r'refusing .*malicious.pth: it refers to code.*posix.system'):
        read_checkpoint(str(malicious))
    assert not marker.exists()

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'\x80\x02not a checkpoint' * 10)
    with pytest.raises(CheckpointError, match=r'garbage.pth is not a PyTorch checkpoint'):
        read_checkpoint(str(garbage))
    (tmp_path / 'empty.pth').touch()
    with pytest.raises(CheckpointError, match=r'empty.pth is empty'):
        read_checkpoint(str(tmp_path / 'empty.pth'))
    with pytest.raises(CheckpointError, match=r'cannot read .*absent.pth: No such file'):
        read_checkpoint(str(tmp_path / 'absent.pth'))
    with pytest.raises(CheckpointError, match=r'cannot read .*: it is a folder, not a file'):
        read_checkpoint(str(tmp_path))
    os.mkfifo(tmp_path / 'pipe.pth')  # reading it would block
    with pytest.raises(CheckpointError, match=r'cannot read .*pipe\.pth: it is a named pipe, not a file'):
        read_checkpoint(str(tmp_path / 'pipe.pth'))


def test_unwrap_finds_the_tensors() -> None:
    tensors = {'a': torch.zeros(1), 'b': torch.ones(2)}
    for checkpoint in (tensors, {'state_dict': tensors, 'meta': {}}, {'model': tensors, 'epoch': 1}):
        assert unwrap_state_dict(checkpoint, 'f.pth') == tensors
    with pytest.raises(CheckpointError, match=r'f.pth holds no state dict'):
        unwrap_state_dict([torch.zeros(1)], 'f.pth')
    with pytest.raises(CheckpointError, match=r"f.pth is not a state dict: 'epoch' is not a named tensor"):
        unwrap_state_dict({'a': torch.zeros(1), 'epoch': 3}, 'f.pth')


def test_save_writes_in_place_of_the_target_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / 'new' / 'folder' / 'weights.pth'
    digest = save_atomically({'w': torch.arange(4)}, str(target))
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    assert torch.equal(torch.load(target, weights_only=True)['w'], torch.arange(4))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask

    with pytest.raises(Exception, match=r"Can't pickle"):
        save_atomically({'w': torch.zeros(1), 'function': lambda: None}, str(target))
    assert torch.equal(torch.load(target, weights_only=True)['w'], torch.arange(4))
    assert [path.name for path in target.parent.iterdir()] == ['weights.pth']


def model_tensors() -> dict[str, torch.Tensor]:
    """What a model with a float weight and BatchNorm's integer counter holds."""
    return {'conv.weight': torch.zeros(2, 3), 'bn.num_batches_tracked': torch.tensor(5)}


@pytest.mark.parametrize(
    'value, message',
    [
        (torch.tensor([[0.0, float('nan'), 1.0]] * 2), 'conv.weight holds NaN or infinite values'),
        (torch.tensor([[0.0, float('-inf'), 1.0]] * 2), 'conv.weight holds NaN or infinite values'),
        (torch.full((2, 3), float('inf'), dtype=torch.float16), 'conv.weight holds NaN or infinite values'),
        (torch.full((2, 3), float('nan'), dtype=torch.bfloat16), 'conv.weight holds NaN or infinite values'),
        (torch.full((2, 3), float('nan')).to(torch.float8_e4m3fn), 'conv.weight holds NaN or infinite values'),
        (torch.ones(2, 3, dtype=torch.int64), 'conv.weight holds int64 values, where the model has float32'),
        (torch.ones(2, 3, dtype=torch.bool), 'conv.weight holds bool values, where the model has float32'),
        (torch.ones(2, 3, dtype=torch.complex64), 'conv.weight holds complex64 values, where the model has float32'),
        (torch.ones(2, 3).to_sparse(), 'conv.weight holds no dense values (a torch.sparse_coo tensor on cpu)'),
        (torch.empty(2, 3, device='meta'), 'conv.weight holds no dense values (a torch.strided tensor on meta)'),
    ],
    ids=['nan', 'inf', 'fp16 inf', 'bf16 nan', 'fp8 nan', 'int64', 'bool', 'complex', 'sparse', 'meta'],
)
def test_check_values_names_the_first_tensor_that_cannot_be_the_models(value: torch.Tensor, message: str) -> None:
    with pytest.raises(CheckpointError) as error:
        check_values({**model_tensors(), 'conv.weight': value}, model_tensors())
    assert str(error.value) == message


def test_check_values_accepts_any_float_precision_and_integer_counters() -> None:
    for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.float8_e5m2):
        check_values({'conv.weight': torch.ones(2, 3, dtype=dtype)}, model_tensors())
    check_values({'bn.num_batches_tracked': torch.tensor(7, dtype=torch.int32)}, model_tensors())
    with pytest.raises(
        CheckpointError, match=r'bn\.num_batches_tracked holds float32 values, where the model has int64'
    ):
        check_values({'bn.num_batches_tracked': torch.tensor(7.0)}, model_tensors())
    # The first damaged tensor in the model's order is named, with the caller's names for tensors.
    damaged = {'bn.num_batches_tracked': torch.tensor(1.5), 'conv.weight': torch.full((2, 3), float('nan'))}
    with pytest.raises(CheckpointError, match=r'^model\.conv\.weight holds NaN'):
        check_values(damaged, model_tensors(), display_key=lambda key: f'model.{key}')


def small_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def test_reads_what_mmengine_loads(tmp_path: Path) -> None:
    state_dict = small_model().state_dict()
    path = tmp_path / 'ddp.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in state_dict.items()}, 'meta': {'epoch': 1}}, path)
    checkpoint = Checkpoint.read(str(path))
    assert checkpoint.state_dict.keys() == state_dict.keys()  # mmengine strips the DDP prefix
    checkpoint.tensors_for(small_model())
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
    checkpoint = Checkpoint.read(str(tmp_path / 'weights.pth'))
    with pytest.raises(CheckpointError, match=r'not a training checkpoint: it holds no training state \(meta\.epoch'):
        check_resumable(checkpoint.content, checkpoint.path)


def test_resuming_needs_a_finite_optimizer_state(tmp_path: Path) -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for parameter in model.parameters():
        parameter.grad = torch.ones_like(parameter)
    optimizer.step()  # a momentum buffer for every parameter
    content = {'meta': {'epoch': 1, 'iter': 1}, 'state_dict': model.state_dict(), 'optimizer': optimizer.state_dict()}
    torch.save(content, tmp_path / 'epoch_1.pth')
    checkpoint = Checkpoint.read(str(tmp_path / 'epoch_1.pth'))
    check_resumable(checkpoint.content, checkpoint.path)
    content['optimizer']['state'][1]['momentum_buffer'][0] = float('nan')
    torch.save(content, tmp_path / 'epoch_1.pth')
    checkpoint = Checkpoint.read(str(tmp_path / 'epoch_1.pth'))
    message = f'{tmp_path}/epoch_1.pth: optimizer.state.1.momentum_buffer holds NaN or infinite values'
    with pytest.raises(CheckpointError, match=f'^{re.escape(message)}, so the run cannot resume from it'):
        check_resumable(checkpoint.content, checkpoint.path)


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


def test_check_fit_lists_missing_unexpected_and_resized() -> None:
    expected = small_model().state_dict()
    state_dict = dict(expected)
    state_dict['2.weight'] = torch.zeros(3, 4)
    del state_dict['0.bias']
    state_dict['extra'] = torch.zeros(1)
    message = (
        'checkpoint c.pth does not fit the model: 1 tensor missing (0.bias), 1 tensor unexpected (extra), '
        '1 tensor of another shape (e.g. 2.weight: (3, 4) in the file, (2, 4) in the model)'
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_fit(state_dict, expected, 'checkpoint c.pth', 'the model')


def test_check_fit_fills_num_batches_tracked_and_orders_like_the_model() -> None:
    expected = small_model().state_dict()
    state_dict = {key: value for key, value in reversed(expected.items()) if not key.endswith('num_batches_tracked')}
    checked = check_fit(state_dict, expected, 'old.pth', 'the model')
    assert list(checked) == list(expected) and checked['1.num_batches_tracked'] == 0
    state_dict['1.weight'] = torch.full((4,), float('nan'))
    with pytest.raises(CheckpointError, match=re.escape('old.pth: 1.weight holds NaN or infinite values')):
        check_fit(state_dict, expected, 'old.pth', 'the model')
