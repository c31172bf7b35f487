"""tools/convert_torchvision.py through its command line, on full-size nets with random weights."""

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from mmengine.logging import HistoryBuffer
from mmengine.runner import load_checkpoint
from PIL import Image
from torch import nn

from mmdensenet.models.backbones.densenet import DenseNet
from tests.cli_helpers import REPO, assert_one_line_error, run_tool
from tests.weight_helpers import (
    RunsCommand,
    assert_same_logits,
    build_config_classifier,
    logits,
    published_layout,
    randomize_batchnorm,
)

ARCHS = ('121', '169', '201', '161')
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def convert(*args: object) -> subprocess.CompletedProcess:
    return run_tool('convert_torchvision.py', *args)


def assert_failed_cleanly(result: subprocess.CompletedProcess, message: str) -> None:
    assert_one_line_error(result, message)
    assert 'Traceback' not in result.stderr and result.stdout == ''


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Converted:
    torchvision_model: nn.Module
    src: Path
    dst: Path
    stdout: str


@pytest.fixture(scope='module')
def converted(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Converted]:
    """Converts a random torchvision DenseNet saved like the published files, once per arch."""
    cache: dict[str, Converted] = {}

    def get(arch: str) -> Converted:
        if arch not in cache:
            folder = tmp_path_factory.mktemp(f'densenet{arch}')
            model = randomize_batchnorm(torchvision.models.get_model(f'densenet{arch}'))
            src = folder / f'densenet{arch}-0123abcd.pth'
            torch.save(published_layout(model.state_dict()), src)
            dst = folder / 'checkpoints' / f'densenet{arch}_mm.pth'
            result = convert(src, dst)
            assert result.returncode == 0, result.stderr
            cache[arch] = Converted(model, src, dst, result.stdout)
        return cache[arch]

    return get


@pytest.mark.parametrize('arch', ARCHS)
def test_converted_weights_give_torchvision_logits_and_convert_back(
    arch: str, converted: Callable[[str], Converted], tmp_path: Path
) -> None:
    result = converted(arch)
    model = build_config_classifier(arch)
    load_checkpoint(model, str(result.dst), map_location='cpu', strict=True)
    images = torch.randn(1, 3, 224, 224)
    expected = logits(result.torchvision_model, images)
    assert_same_logits(logits(model, images), expected)

    back = tmp_path / f'densenet{arch}_tv.pth'
    reverse = convert('--reverse', '--arch', arch, result.dst, back)
    assert reverse.returncode == 0, reverse.stderr
    with torch.device('meta'):
        restored = torchvision.models.get_model(f'densenet{arch}')
    restored.load_state_dict(torch.load(back, weights_only=True), strict=True, assign=True)
    for key, tensor in result.torchvision_model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], tensor) or key.endswith('num_batches_tracked'), key


def test_summary_and_meta(converted: Callable[[str], Converted]) -> None:
    result = converted('121')
    checkpoint = torch.load(result.dst, weights_only=True)
    assert set(checkpoint) == {'state_dict', 'meta'}
    meta = checkpoint['meta']
    assert meta['arch'] == '121'
    assert meta['source'] == result.src.name
    assert meta['source_sha256'] == sha256(result.src)
    state_dict = checkpoint['state_dict']
    assert state_dict['backbone.stem.1.num_batches_tracked'].item() == 0
    assert result.stdout.splitlines() == [
        'arch: DenseNet-121',
        f'tensors: {len(state_dict)} (121 num_batches_tracked set to 0)',
        f'output: {result.dst}',
        f'sha256: {sha256(result.dst)}',
    ]
    # Plain tensors and builtin types: a fresh process loads it weights-only without mmdensenet.
    load = f'import sys, torch; torch.load({str(result.dst)!r}, weights_only=True); print("mmdensenet" in sys.modules)'
    check = subprocess.run([sys.executable, '-c', load], capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.strip() == 'False', check.stderr


def test_current_layouts_and_wrappers_convert_alike(converted: Callable[[str], Converted], tmp_path: Path) -> None:
    result = converted('121')
    reference = torch.load(result.dst, weights_only=True)['state_dict']
    current = result.torchvision_model.state_dict()
    variants = {
        'state_dict': {'state_dict': {f'module.{key}': tensor for key, tensor in current.items()}, 'epoch': 3},
        'model': {'model': current, 'args': {'lr': 0.1}},
    }
    for name, checkpoint in variants.items():
        src = tmp_path / f'{name}.pth'
        torch.save(checkpoint, src)
        outcome = convert('--arch', '121', src, tmp_path / f'{name}_mm.pth')
        assert outcome.returncode == 0, outcome.stderr
        state_dict = torch.load(tmp_path / f'{name}_mm.pth', weights_only=True)['state_dict']
        assert list(state_dict) == list(reference), name
        for key, tensor in state_dict.items():
            expected = torch.tensor(7) if key.endswith('num_batches_tracked') else reference[key]
            assert torch.equal(tensor, expected), (name, key)


def test_loads_as_detection_backbone_init(converted: Callable[[str], Converted]) -> None:
    result = converted('121')
    init_cfg = dict(type='Pretrained', checkpoint=str(result.dst), prefix='backbone.')
    backbone = DenseNet(arch='121', out_indices=(0, 1, 2, 3), init_cfg=init_cfg)
    backbone.init_weights()
    saved = torch.load(result.dst, weights_only=True)['state_dict']
    loaded = backbone.state_dict()
    assert len(loaded) == len(saved) - 2  # all but the head
    for key, tensor in loaded.items():
        assert torch.equal(tensor, saved[f'backbone.{key}']), key


def test_tools_test_with_load_from_predicts_like_torchvision(
    converted: Callable[[str], Converted], tmp_path: Path
) -> None:
    """tools/test.py loads the checkpoint through the runner's load_from and predicts torchvision's scores."""
    result = converted('121')
    images = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    (tmp_path / 'data' / 'meta').mkdir(parents=True)
    (tmp_path / 'data' / 'val').mkdir()
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(tmp_path / 'data' / 'val' / f'{i}.png')
    (tmp_path / 'data' / 'meta' / 'val.txt').write_text('0.png 3\n1.png 5\n')
    config = tmp_path / 'densenet121_224px.py'
    config.write_text(
        f"""_base_ = [{str(REPO / 'configs' / 'densenet121_4xb256_in1k.py')!r}]
test_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root={str(tmp_path / 'data')!r}, pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    ),
)
"""
    )
    predictions = tmp_path / 'predictions.pkl'
    outcome = run_tool('test.py', config, result.dst, '--work-dir', tmp_path / 'work', '--out', predictions)
    assert outcome.returncode == 0, outcome.stderr[-2000:]

    normalised = (
        torch.from_numpy(images).permute(0, 3, 1, 2).float() - torch.tensor(MEAN).view(1, 3, 1, 1)
    ) / torch.tensor(STD).view(1, 3, 1, 1)
    expected = logits(result.torchvision_model, normalised).softmax(1)
    scores = torch.stack([sample['pred_score'] for sample in pickle.loads(predictions.read_bytes())])
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-6)


def test_reverse_gives_torchvision_our_trained_weights(tmp_path: Path) -> None:
    """A checkpoint of our runner (message hub and all) goes to torchvision with the same logits."""
    model = randomize_batchnorm(build_config_classifier('121'))
    history = HistoryBuffer()
    history.update(2.5)
    checkpoint = dict(
        meta=dict(epoch=90, seed=np.int64(3)),
        state_dict=model.state_dict(),
        message_hub=dict(log_scalars={'train/loss': history}, runtime_info={'eta': np.float64(0.0)}),
    )
    src = tmp_path / 'epoch_90.pth'
    torch.save(checkpoint, src)
    dst = tmp_path / 'densenet121_tv.pth'
    result = convert('--reverse', src, dst)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ['arch: DenseNet-121', f'tensors: {len(model.state_dict())}']
    with torch.device('meta'):
        torchvision_model = torchvision.models.densenet121()
    torchvision_model.load_state_dict(torch.load(dst, weights_only=True), strict=True, assign=True)
    images = torch.randn(1, 3, 224, 224)
    assert_same_logits(logits(torchvision_model.eval(), images), logits(model, images))


def resnet_checkpoint(path: Path) -> None:
    torch.save(torchvision.models.resnet18().state_dict(), path)


def missing_tensor(path: Path) -> None:
    state_dict = published_layout(torchvision.models.densenet121().state_dict())
    del state_dict['features.denseblock2.denselayer3.norm.2.running_var']
    torch.save(state_dict, path)


def wrong_shape(path: Path) -> None:
    state_dict = torchvision.models.densenet121().state_dict()
    state_dict['features.denseblock1.denselayer2.conv1.weight'] = torch.zeros(128, 95, 1, 1)
    torch.save(state_dict, path)


def malicious(path: Path) -> None:
    marker = path.with_name('code_ran')
    torch.save({'state_dict': {'classifier.bias': torch.zeros(3)}, 'x': RunsCommand(f'touch {marker}')}, path)


BAD_INPUTS = {
    'missing file': (None, 'checkpoint not found'),
    'empty file': (lambda path: path.write_bytes(b''), 'is empty'),
    'random bytes': (lambda path: path.write_bytes(np.random.default_rng(0).bytes(4096)), 'not a PyTorch checkpoint'),
    'resnet': (resnet_checkpoint, "'conv1.weight' is not a key of a torchvision DenseNet"),
    'tensor missing': (missing_tensor, '1 tensor missing (features.denseblock2.denselayer3.norm2.running_var)'),
    'wrong shape': (wrong_shape, 'features.denseblock1.denselayer2.conv1.weight: (128, 95, 1, 1) in the file'),
    'code inside': (malicious, 'refusing'),
}


@pytest.mark.parametrize('case', BAD_INPUTS)
def test_bad_input_fails_cleanly_and_writes_nothing(case: str, tmp_path: Path) -> None:
    make, message = BAD_INPUTS[case]
    src = tmp_path / 'input.pth'
    if make is not None:
        make(src)
    before = (sha256(src), src.stat().st_mtime_ns) if src.exists() else None
    dst = tmp_path / 'out' / 'converted.pth'
    result = convert(src, dst)
    assert_failed_cleanly(result, message)
    assert not (tmp_path / 'out').exists()
    assert not (tmp_path / 'code_ran').exists()
    assert ((sha256(src), src.stat().st_mtime_ns) if src.exists() else None) == before


def test_refuses_to_overwrite_its_input_or_a_wrong_arch(converted: Callable[[str], Converted], tmp_path: Path) -> None:
    result = converted('169')
    before = (sha256(result.src), result.src.stat().st_mtime_ns)
    same = convert(result.src, result.src)
    assert_failed_cleanly(same, 'is the input file')

    existing = tmp_path / 'existing.pth'
    existing.write_bytes(b'keep me')
    wrong_arch = convert('--arch', '121', result.src, existing)
    assert_failed_cleanly(wrong_arch, 'holds DenseNet-169, not the requested DenseNet-121')
    assert existing.read_bytes() == b'keep me'
    assert (sha256(result.src), result.src.stat().st_mtime_ns) == before
    assert [path.name for path in tmp_path.iterdir()] == ['existing.pth']


def test_reverse_refuses_torchvision_input(converted: Callable[[str], Converted], tmp_path: Path) -> None:
    result = convert('--reverse', converted('121').src, tmp_path / 'out.pth')
    assert_failed_cleanly(result, 'not a DenseNet-121/169/201/161')
    assert not (tmp_path / 'out.pth').exists()


def test_a_named_pipe_is_refused_unread(tmp_path: Path) -> None:
    """Reading a named pipe that nothing writes to would never end."""
    os.mkfifo(tmp_path / 'pipe.pth')
    for reverse in ([], ['--reverse']):
        result = run_tool('convert_torchvision.py', *reverse, tmp_path / 'pipe.pth', tmp_path / 'out.pth', timeout=300)
        assert_failed_cleanly(result, f'checkpoint {tmp_path / "pipe.pth"} is a named pipe, not a file')
    assert sorted(path.name for path in tmp_path.iterdir()) == ['pipe.pth']
