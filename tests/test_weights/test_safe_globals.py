"""Runner checkpoints load weights-only once mmdensenet is imported; code in a checkpoint never runs."""

import io
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from PIL import Image
from weight_helpers import REPO, RunsCommand

from mmdensenet.weights.safe_globals import history_buffer_statistic

EPOCH_ITERS = 2  # 4 training images, batch 2


def run(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))}
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def train(config: Path, *args: object) -> subprocess.CompletedProcess:
    return run(REPO / 'tools' / 'train.py', config, *args)


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/densenet121_4xb256_in1k.py with a tiny net on a folder of 32-pixel images."""
    root = tmp_path_factory.mktemp('run')
    rng = np.random.default_rng(0)
    for label in ('cat', 'dog'):
        (root / 'images' / label).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / 'images' / label / f'{i}.png')
    config = root / 'tiny.py'
    config.write_text(
        f"""_base_ = [{str(REPO / 'configs' / 'densenet121_4xb256_in1k.py')!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)),
    head=dict(in_channels=51),
)
dataset = dict(
    _delete_=True,
    type='CustomDataset',
    data_root={str(root / 'images')!r},
    pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')],
)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dataset)
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dataset)
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
"""
    )
    return config


@pytest.fixture(scope='module')
def first_epoch(tiny_config: Path) -> Path:
    """A work dir after one epoch of a real run of tools/train.py."""
    work_dir = tiny_config.parent / 'work'
    result = train(tiny_config, '--work-dir', work_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir


def test_runner_checkpoints_need_the_allowlist(first_epoch: Path) -> None:
    checkpoint = first_epoch / 'epoch_1.pth'
    without = run('-c', f'import torch; torch.load({str(checkpoint)!r})')
    assert without.returncode != 0 and 'HistoryBuffer' in without.stderr
    with_mmdensenet = run('-c', f'import mmdensenet, torch; print(torch.load({str(checkpoint)!r})["meta"]["epoch"])')
    assert with_mmdensenet.returncode == 0, with_mmdensenet.stderr
    assert with_mmdensenet.stdout.strip() == '1'


def test_resume_continues_with_the_logged_history(first_epoch: Path, tiny_config: Path, tmp_path: Path) -> None:
    work_dir = shutil.copytree(first_epoch, tmp_path / 'work')
    result = train(tiny_config, '--work-dir', work_dir, '--resume', '--cfg-options', 'train_cfg.max_epochs=2')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: 1' in result.stdout + result.stderr
    checkpoint = torch.load(work_dir / 'epoch_2.pth')
    assert checkpoint['meta']['epoch'] == 2
    loss_history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss_history, HistoryBuffer)
    assert len(loss_history.data[0]) == 2 * EPOCH_ITERS  # the first epoch's entries came back


def test_testing_a_trained_checkpoint(first_epoch: Path, tiny_config: Path, tmp_path: Path) -> None:
    result = run(REPO / 'tools' / 'test.py', tiny_config, first_epoch / 'epoch_1.pth', '--work-dir', tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'accuracy/top1' in result.stdout + result.stderr


def test_code_in_a_checkpoint_never_runs(tiny_config: Path, tmp_path: Path) -> None:
    marker = tmp_path / 'code_ran'
    malicious = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {}, 'meta': {'epoch': 1}, 'payload': RunsCommand(f'touch {marker}')}, malicious)
    tested = run(REPO / 'tools' / 'test.py', tiny_config, malicious, '--work-dir', tmp_path / 'work')
    assert tested.returncode != 0
    assert 'GLOBAL posix.system' in tested.stderr
    assert not marker.exists()


class FetchesAttribute:
    """Pickles into getattr(owner, name), the way HistoryBuffer's statistics methods are saved."""

    def __init__(self, owner: type, name: str) -> None:
        self.owner, self.name = owner, name

    def __reduce__(self) -> tuple:
        return getattr, (self.owner, self.name)


def test_getattr_in_a_checkpoint_reaches_only_history_statistics(tmp_path: Path) -> None:
    allowed, refused = tmp_path / 'allowed.pth', tmp_path / 'refused.pth'
    torch.save({'statistic': FetchesAttribute(HistoryBuffer, 'mean')}, allowed)
    assert torch.load(allowed)['statistic'] is HistoryBuffer.mean
    torch.save({'statistic': FetchesAttribute(HistoryBuffer, 'update')}, refused)
    with pytest.raises(pickle.UnpicklingError, match=r"getattr.*'update'.* not allowed"):
        torch.load(refused)
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        history_buffer_statistic(np.ndarray, 'mean')


def test_numpy_values_load_under_the_names_of_numpy_1_and_2(tmp_path: Path) -> None:
    values = {'eta': np.float64(1.5), 'history': np.array([1.0, 2.0]), 'steps': np.int64(4)}
    buffer = io.BytesIO()
    torch.save(values, buffer, _use_new_zipfile_serialization=False)  # one plain pickle stream
    written = buffer.getvalue()
    names = {'numpy2': b'numpy._core.multiarray\n', 'numpy1': b'numpy.core.multiarray\n'}
    own = [module for module in names.values() if module in written]
    assert len(own) == 1, written  # the installed numpy writes one of the two names
    for name, module in names.items():
        data = written.replace(own[0], module)
        assert module in data
        (tmp_path / name).write_bytes(data)
        loaded = torch.load(tmp_path / name, weights_only=True)
        assert loaded['eta'] == 1.5 and loaded['steps'] == 4 and loaded['history'].tolist() == [1.0, 2.0], name
