"""tools/train.py under faults: signals, a kill during a save, torn and unwritable checkpoints.

Every run is a real training subprocess on the tiny folder, killed if it outlives TIMEOUT. The
signals come from outside, at points where fault_injection.py makes the run wait for them.
"""

import ctypes
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import pytest
import torch

from mmdensenet.engine import PREEMPTION_CHECKPOINT, STOP_EXIT_CODE
from mmdensenet.weights import read_checkpoint
from tests.cli_helpers import HOOKS, REPO, free_port

TRAIN = REPO / 'tools' / 'train.py'
TIMEOUT = 300  # seconds; a run on a busy 2-core machine takes well under a minute
STOPPED = re.compile(
    r'stopped by (SIG\w+) after iteration (\d+) \(epoch (\d+)\); saved (\S+); '
    r'to continue, run the same command with --resume'
)


class Run:
    """A training subprocess whose output is read as it comes."""

    def __init__(self, *args: object, env: Optional[dict] = None, **popen_args) -> None:
        paths = os.pathsep.join([str(REPO), str(HOOKS)])
        self.stderr = tempfile.TemporaryFile('w+')  # noqa: SIM115 (closed by finish)
        self.process = subprocess.Popen(
            [sys.executable, str(TRAIN), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env={**os.environ, 'PYTHONPATH': paths, 'OMP_NUM_THREADS': '1', **(env or {})},
            cwd=REPO,
            **popen_args,
        )
        self.timer = threading.Timer(TIMEOUT, self.process.kill)
        self.timer.start()
        self.stdout = ''

    def wait_for_pause(self) -> None:
        for line in self.process.stdout:
            self.stdout += line
            if line.startswith('FAULT paused'):
                return
        raise AssertionError('the run ended without pausing:\n' + self.finish()[1][-3000:])

    def finish(self) -> tuple[int, str, str]:
        """Waits for the end; returns the exit status, stdout and stderr."""
        self.stdout += self.process.stdout.read()
        returncode = self.process.wait()
        self.timer.cancel()
        self.stderr.seek(0)
        with self.stderr:
            return returncode, self.stdout, self.stderr.read()


def train(
    config: Path,
    work_dir: Path,
    *args: str,
    env: Optional[dict] = None,
    signals: Sequence[int] = (),
    send: Optional[Callable[[subprocess.Popen, int], None]] = None,
    **popen_args,
) -> tuple[int, str, str]:
    """Trains, sending each of ``signals`` when the run pauses for it; returns status, stdout, stderr."""
    run = Run(config, '--work-dir', work_dir, *args, env=env, **popen_args)
    for signum in signals:
        run.wait_for_pause()
        (send or subprocess.Popen.send_signal)(run.process, signum)
    return run.finish()


def assert_ok(result: tuple[int, str, str]) -> str:
    returncode, stdout, stderr = result
    assert returncode == 0, stdout[-3000:] + stderr[-3000:]
    return stdout


def assert_stopped(result: tuple[int, str, str], name: str, iteration: int, epoch: int, work_dir: Path) -> None:
    """The run exited as a stop should: status 75, one line saying how to resume, a resumable checkpoint."""
    returncode, stdout, stderr = result
    assert returncode == STOP_EXIT_CODE, stdout[-3000:] + stderr[-3000:]
    assert len(STOPPED.findall(stdout)) == 1, stdout[-3000:]
    checkpoint = work_dir / PREEMPTION_CHECKPOINT
    assert STOPPED.search(stdout).groups() == (name, str(iteration), str(epoch), str(checkpoint))
    assert (work_dir / 'last_checkpoint').read_text() == str(checkpoint)
    assert read_checkpoint(str(checkpoint))[0]['meta']['iter'] == iteration
    assert hidden_files(work_dir) == []


def hidden_files(work_dir: Path) -> list[str]:
    """What a save left beside the checkpoints: its temporary files start with a dot."""
    return [p.name for p in work_dir.iterdir() if p.name.startswith('.')]


def checkpoint_names(work_dir: Path) -> list[str]:
    return sorted(p.name for p in work_dir.iterdir() if p.suffix == '.pth' and not p.name.startswith('.'))


def parameters(checkpoint: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(str(checkpoint))[0]['state_dict']


def assert_same_parameters(checkpoint: Path, expected: Path) -> None:
    actual, wanted = parameters(checkpoint), parameters(expected)
    assert actual.keys() == wanted.keys()
    assert [name for name in wanted if not torch.equal(actual[name], wanted[name])] == []


def tear(path: Path) -> None:
    """Cuts a file in half, as a kill during a save without atomic writes would leave it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope='module')
def fault_config(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_config`` for two epochs of six iterations, with the fault-injecting hook."""
    path = tmp_path_factory.mktemp('configs') / 'tiny-densenet-faults_2xb2_in1k.py'
    path.write_text(
        f"""_base_ = [{str(tiny_config)!r}]
custom_imports = dict(imports=['mmdensenet', 'fault_injection'])
custom_hooks = [dict(type='InjectFaults')]
train_cfg = dict(max_epochs=2)
"""
    )
    return path


@pytest.fixture(scope='module')
def uninterrupted(fault_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    assert_ok(train(fault_config, work_dir))
    assert checkpoint_names(work_dir) == ['epoch_1.pth', 'epoch_2.pth']
    return work_dir


def resumed_at(batch: int, epoch: int) -> str:
    return f'epoch {epoch}: {batch} of its 6 batches were trained on before the stop; continuing with the rest'


def test_a_run_stopped_three_times_ends_like_an_uninterrupted_one(
    fault_config: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """Stops inside an epoch, at the last iteration of a resumed epoch, and during an epoch's save."""
    work_dir = tmp_path / 'work_dir'
    # Iteration 3, then a second SIGTERM during the save that the first one asked for: it changes nothing.
    result = train(
        fault_config, work_dir, env=dict(FAULT_PAUSE_AT_ITER='2', FAULT_PAUSE_AT_SAVE='1'),
        signals=[signal.SIGTERM, signal.SIGTERM],
    )  # fmt: skip
    assert_stopped(result, 'SIGTERM', iteration=3, epoch=1, work_dir=work_dir)

    # SIGINT in iteration 6, the last of epoch 1: what is left of the epoch is empty.
    result = train(fault_config, work_dir, '--resume', env=dict(FAULT_PAUSE_AT_ITER='5'), signals=[signal.SIGINT])
    assert resumed_at(3, epoch=1) in result[1]
    assert_stopped(result, 'SIGINT', iteration=6, epoch=1, work_dir=work_dir)

    # SIGTERM while epoch_1.pth is saved: the run stops after the next iteration.
    result = train(fault_config, work_dir, '--resume', env=dict(FAULT_PAUSE_AT_SAVE='1'), signals=[signal.SIGTERM])
    assert resumed_at(6, epoch=1) in result[1]
    assert_stopped(result, 'SIGTERM', iteration=7, epoch=2, work_dir=work_dir)

    stdout = assert_ok(train(fault_config, work_dir, '--resume'))

    assert resumed_at(1, epoch=2) in stdout
    assert checkpoint_names(work_dir) == ['epoch_1.pth', 'epoch_2.pth', PREEMPTION_CHECKPOINT]
    assert_same_parameters(work_dir / 'epoch_2.pth', uninterrupted / 'epoch_2.pth')


def test_sigkill_during_a_save_then_resume(fault_config: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / 'work_dir'
    # The second save, epoch_2.pth's, writes half of the file, then the process is killed.
    returncode, _, _ = train(fault_config, work_dir, env=dict(FAULT_TEAR_SAVE='2'))

    assert returncode == -signal.SIGKILL
    assert checkpoint_names(work_dir) == ['epoch_1.pth']
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'epoch_1.pth')
    (torn,) = hidden_files(work_dir)
    assert torn.startswith('.epoch_2.pth.')
    assert 0 < (work_dir / torn).stat().st_size < (work_dir / 'epoch_1.pth').stat().st_size

    # Where a save without the temporary file would have left it: a newest checkpoint that is torn.
    (work_dir / torn).rename(work_dir / 'epoch_2.pth')
    stdout = assert_ok(train(fault_config, work_dir, '--resume'))

    (warning,) = [line for line in stdout.splitlines() if 'trying an older checkpoint' in line]
    assert f'{work_dir / "epoch_2.pth"} is not a PyTorch checkpoint' in warning
    assert 'resumed epoch: 1, iter: 6' in stdout
    assert read_checkpoint(str(work_dir / 'epoch_2.pth'))[0]['meta']['epoch'] == 2
    assert hidden_files(work_dir) == []

    tear(work_dir / 'epoch_1.pth')
    tear(work_dir / 'epoch_2.pth')
    returncode, _, stderr = train(fault_config, work_dir, '--resume')

    assert returncode == 1
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f'error: none of the 2 checkpoints in {work_dir} can be resumed from; newest: ')
    assert f'{work_dir / "epoch_2.pth"} is not a PyTorch checkpoint' in line


def _drop_root_permission_override() -> None:
    """Run in a child before it starts: without CAP_DAC_OVERRIDE, root too meets read-only folders."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), 'cannot drop the capability')


def _file_size_limit(limit: int) -> Callable[[], None]:
    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_file_size


@pytest.mark.parametrize('fault', ['read-only work dir', 'full disk'])
def test_a_failed_write_is_one_line_and_leaves_no_file(
    fault: str, fault_config: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    work_dir = tmp_path / 'work_dir'
    work_dir.mkdir()
    if fault == 'read-only work dir':
        work_dir.chmod(0o555)
        preexec_fn = _drop_root_permission_override if os.geteuid() == 0 else None
        expected = f'error: work_dir {work_dir}: Permission denied'
    else:
        # A file size limit stands in for a full disk: the write stops part-way with an error.
        preexec_fn = _file_size_limit((uninterrupted / 'epoch_1.pth').stat().st_size // 2)
        expected = f'error: cannot save checkpoint {work_dir / "epoch_1.pth"}: File too large'
    try:
        returncode, stdout, stderr = train(fault_config, work_dir, preexec_fn=preexec_fn)
    except subprocess.SubprocessError as error:
        pytest.skip(f'cannot run a child without root permission override: {error}')
    finally:
        work_dir.chmod(0o755)

    assert returncode == 1 and stderr.strip().splitlines() == [expected], stdout[-3000:] + stderr[-3000:]
    assert checkpoint_names(work_dir) == [] and hidden_files(work_dir) == []


def test_sigterm_to_every_process_of_a_run_with_loader_workers(fault_config: Path, tmp_path: Path) -> None:
    """As slurm signals a job: the loader's worker processes get SIGTERM too and leave the stop to the run."""
    work_dir = tmp_path / 'work_dir'
    workers = ['train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=True']
    result = train(
        fault_config, work_dir, '--cfg-options', *workers,
        env=dict(FAULT_PAUSE_AT_ITER='2'), signals=[signal.SIGTERM],
        send=lambda process, signum: os.killpg(process.pid, signum), start_new_session=True,
    )  # fmt: skip

    assert_stopped(result, 'SIGTERM', 3, 1, work_dir)


def test_two_processes_stop_together_when_one_is_signalled(fault_config: Path, tmp_path: Path) -> None:
    """Two gloo processes started as srun starts them; only rank 1 gets the SIGTERM."""
    work_dir = tmp_path / 'work_dir'

    def start_both(*args: str, **env: str) -> list[Run]:
        port = str(free_port())
        slurm = dict(SLURM_NTASKS='2', SLURM_NODELIST='localhost', MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        command = [fault_config, '--work-dir', work_dir, '--launcher', 'slurm', *args]
        return [
            Run(*command, env={**slurm, **env, 'SLURM_PROCID': str(rank), 'SLURM_LOCALID': str(rank)})
            for rank in (0, 1)
        ]

    rank0, rank1 = start_both(FAULT_RANK='1', FAULT_PAUSE_AT_ITER='1')
    rank1.wait_for_pause()
    rank1.process.send_signal(signal.SIGTERM)
    results = [rank0.finish(), rank1.finish()]

    assert [r[0] for r in results] == [STOP_EXIT_CODE, STOP_EXIT_CODE], results[0][2][-3000:] + results[1][2][-3000:]
    assert_stopped(results[0], 'SIGTERM', 2, 1, work_dir)  # 12 images, 2 processes x 2 a batch: 3 iterations an epoch

    results = [run.finish() for run in start_both('--resume')]

    for result in results:
        assert_ok(result)
    assert 'epoch 1: 2 of its 3 batches were trained on before the stop' in results[0][1]
    assert read_checkpoint(str(work_dir / 'epoch_2.pth'))[0]['meta']['iter'] == 6
