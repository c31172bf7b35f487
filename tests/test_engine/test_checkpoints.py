"""Atomic checkpoint saves and the choice of a checkpoint to resume from, on real files."""

import errno
import os
import re
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import save_checkpoint

from mmdensenet.engine import atomic_save_checkpoint, find_resumable_checkpoint
from mmdensenet.engine.checkpoints import resumable_candidates
from mmdensenet.errors import ToolError
from mmdensenet.weights import read_checkpoint


def training_checkpoint(epoch: int) -> dict:
    return {'meta': {'epoch': epoch, 'iter': 6 * epoch}, 'state_dict': {'w': torch.full((2,), float(epoch))}}


def runner_save(checkpoint: dict):
    """Writes ``checkpoint`` as Runner.save_checkpoint does: through mmengine's file backend."""

    def save(out_dir: str, filename: str, file_client_args=None, **kwargs) -> None:
        save_checkpoint(checkpoint, os.path.join(out_dir, filename))

    return save


def write(path: Path, checkpoint: dict, age: int) -> Path:
    """Saves ``checkpoint`` as if written ``age`` seconds ago."""
    torch.save(checkpoint, path)
    stamp = 1_700_000_000 - age
    os.utime(path, (stamp, stamp))
    return path


def test_a_save_replaces_the_file_whole_and_removes_what_a_killed_save_left(tmp_path: Path) -> None:
    (tmp_path / 'epoch_1.pth').write_bytes(b'previous')
    leftover = tmp_path / '.epoch_1.pth.k1ll3d.pth'
    leftover.write_bytes(b'half a checkpoint')

    atomic_save_checkpoint(runner_save(training_checkpoint(1)), str(tmp_path), 'epoch_1.pth', None, meta={})

    assert read_checkpoint(str(tmp_path / 'epoch_1.pth'))[0]['meta']['epoch'] == 1
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_1.pth']


def test_a_failed_write_is_one_error_and_keeps_the_previous_file(tmp_path: Path) -> None:
    (tmp_path / 'epoch_1.pth').write_bytes(b'previous')

    def save_until_the_disk_is_full(out_dir: str, filename: str, file_client_args=None, **kwargs) -> None:
        with open(os.path.join(out_dir, filename), 'wb') as f:
            f.write(b'half a checkpoint')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    expected = f'cannot save checkpoint {tmp_path / "epoch_1.pth"}: No space left on device'
    with pytest.raises(ToolError, match=f'^{re.escape(expected)}$'):
        atomic_save_checkpoint(save_until_the_disk_is_full, str(tmp_path), 'epoch_1.pth')

    assert [p.name for p in tmp_path.iterdir()] == ['epoch_1.pth']
    assert (tmp_path / 'epoch_1.pth').read_bytes() == b'previous'


def test_remote_folders_are_left_to_their_backend(tmp_path: Path) -> None:
    calls = []
    atomic_save_checkpoint(lambda *args, **kwargs: calls.append(args), 's3://bucket/run', 'epoch_1.pth')
    assert calls == [('s3://bucket/run', 'epoch_1.pth', None)]


def test_resume_takes_the_newest_readable_training_checkpoint(tmp_path: Path) -> None:
    write(tmp_path / 'epoch_1.pth', training_checkpoint(1), age=30)
    write(tmp_path / 'epoch_2.pth', training_checkpoint(2), age=20)
    write(tmp_path / 'epoch_3.pth', training_checkpoint(3), age=10).write_bytes(b'torn')
    write(tmp_path / 'best_accuracy_top1_epoch_3.pth', training_checkpoint(3), age=0)  # no optimizer: not resumable
    write(tmp_path / '.epoch_4.pth.k1ll3d.pth', training_checkpoint(4), age=0)  # a killed save's temporary file
    write(tmp_path / 'weights.pth', training_checkpoint(5), age=0)

    assert find_resumable_checkpoint(tmp_path) == str(tmp_path / 'epoch_2.pth')


def test_what_last_checkpoint_names_is_a_candidate_too(tmp_path: Path) -> None:
    elsewhere = tmp_path / 'checkpoints'
    elsewhere.mkdir()
    work_dir = tmp_path / 'work_dir'
    work_dir.mkdir()
    write(work_dir / 'epoch_1.pth', training_checkpoint(1), age=20)
    write(elsewhere / 'epoch_2.pth', training_checkpoint(2), age=10)
    (work_dir / 'last_checkpoint').write_text(str(elsewhere / 'epoch_2.pth'))

    assert resumable_candidates(work_dir) == [elsewhere / 'epoch_2.pth', work_dir / 'epoch_1.pth']
    assert find_resumable_checkpoint(work_dir) == str(elsewhere / 'epoch_2.pth')


def test_a_state_dict_alone_cannot_be_resumed_from(tmp_path: Path) -> None:
    write(tmp_path / 'epoch_1.pth', training_checkpoint(1), age=20)
    write(tmp_path / 'epoch_2.pth', {'state_dict': {'w': torch.zeros(2)}}, age=10)
    assert find_resumable_checkpoint(tmp_path) == str(tmp_path / 'epoch_1.pth')


def test_a_checkpoint_with_a_damaged_optimizer_state_is_passed_over(tmp_path: Path) -> None:
    write(tmp_path / 'epoch_1.pth', training_checkpoint(1), age=20)
    damaged = dict(training_checkpoint(2), optimizer={'state': {0: {'momentum_buffer': torch.tensor([float('inf')])}}})
    write(tmp_path / 'epoch_2.pth', damaged, age=10)
    assert find_resumable_checkpoint(tmp_path) == str(tmp_path / 'epoch_1.pth')


def test_no_checkpoint_means_from_scratch_and_only_broken_ones_are_an_error(tmp_path: Path) -> None:
    assert find_resumable_checkpoint(tmp_path / 'missing') is None
    assert find_resumable_checkpoint(tmp_path) is None
    write(tmp_path / 'epoch_1.pth', training_checkpoint(1), age=20).write_bytes(b'')
    write(tmp_path / 'preempted.pth', training_checkpoint(1), age=10).write_bytes(b'torn')

    with pytest.raises(ToolError, match=r'^none of the 2 checkpoints in .* newest: .*preempted\.pth is not a PyTorch'):
        find_resumable_checkpoint(tmp_path)
