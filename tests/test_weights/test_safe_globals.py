"""Runner checkpoints load weights-only once mmdensenet is imported; code in a checkpoint never runs."""

import io
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmdensenet.weights.safe_globals import history_buffer_statistic
from tests.cli_helpers import NUM_CLASSES, REPO, python
from tests.weight_helpers import RunsCommand

EPOCH_ITERS = NUM_CLASSES * 4 // 2  # tests/conftest.py's tiny_config: 4 training images a class, batch 2


def train(config: Path, *args: object) -> subprocess.CompletedProcess:
    return python(REPO / 'tools' / 'train.py', config, *args)


@pytest.fixture(scope='module')
def first_epoch(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work dir after one epoch of a real run of tools/train.py."""
    work_dir = tmp_path_factory.mktemp('work')
    result = train(tiny_config, '--work-dir', work_dir, '--cfg-options', 'train_cfg.max_epochs=1')
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir


def test_runner_checkpoints_need_the_allowlist(first_epoch: Path) -> None:
    checkpoint = first_epoch / 'epoch_1.pth'
    without = python('-c', f'import torch; torch.load({str(checkpoint)!r})')
    assert without.returncode != 0 and 'HistoryBuffer' in without.stderr
    with_mmdensenet = python('-c', f'import mmdensenet, torch; print(torch.load({str(checkpoint)!r})["meta"]["epoch"])')
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
    result = python(REPO / 'tools' / 'test.py', tiny_config, first_epoch / 'epoch_1.pth', '--work-dir', tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'accuracy/top1' in result.stdout + result.stderr


def test_code_in_a_checkpoint_never_runs(tiny_config: Path, tmp_path: Path) -> None:
    marker = tmp_path / 'code_ran'
    malicious = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {}, 'meta': {'epoch': 1}, 'payload': RunsCommand(f'touch {marker}')}, malicious)
    tested = python(REPO / 'tools' / 'test.py', tiny_config, malicious, '--work-dir', tmp_path / 'work')
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
