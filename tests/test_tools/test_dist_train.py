"""Two-process training and testing on CPU (gloo), through the scripts a multi-GPU run uses."""

import pickle
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mmdensenet.analysis.curves import find_scalar_log, read_scalar_log
from tests.cli_helpers import REPO, assert_ok, assert_one_line_error, free_port, python, run


@pytest.fixture(scope='module')
def dist_trained(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work_dir = tmp_path_factory.mktemp('dist_work_dir')
    result = run(
        'bash', REPO / 'tools' / 'dist_train.sh', tiny_config, 2,
        '--work-dir', work_dir, '--auto-scale-lr', '--cfg-options', 'train_cfg.max_epochs=1',
        env={'PORT': str(free_port())},
    )  # fmt: skip
    assert_ok(result)
    return work_dir


def test_dist_train_splits_the_data_and_scales_the_lr(dist_trained: Path) -> None:
    log = read_scalar_log(find_scalar_log(dist_trained))
    assert [r['step'] for r in log.train] == [1, 2, 3]  # 12 images, 2 processes x 2 per batch
    # lr 0.4 for 1024 images rescaled to 2 x 2, warming up from a quarter of it.
    assert log.train[0]['lr'] == pytest.approx(0.4 * 4 / 1024 * 0.25)
    assert (dist_trained / 'epoch_1.pth').is_file()


def test_dist_test_gathers_every_process(dist_trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / 'predictions.pkl'
    result = run(
        'bash', REPO / 'tools' / 'dist_test.sh', tiny_config, dist_trained / 'epoch_1.pth', 2,
        '--work-dir', tmp_path / 'test', '--out', out,
        env={'PORT': str(free_port())},
    )  # fmt: skip
    assert_ok(result)
    assert len(pickle.loads(out.read_bytes())) == 6


def test_slurm_launcher_runs_without_gpus(dist_trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    """Two tasks as srun starts them: only the SLURM_* variables say who is who."""
    out = tmp_path / 'predictions.pkl'
    port = str(free_port())
    command = [REPO / 'tools' / 'test.py', tiny_config, dist_trained / 'epoch_1.pth', '--launcher', 'slurm']
    command += ['--work-dir', tmp_path / 'test', '--out', out]
    slurm_env = dict(SLURM_NTASKS='2', SLURM_NODELIST='localhost', MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
    with ThreadPoolExecutor(2) as pool:
        tasks = [
            pool.submit(python, *command, env={**slurm_env, 'SLURM_PROCID': str(rank), 'SLURM_LOCALID': str(rank)})
            for rank in (0, 1)
        ]
    results = [task.result() for task in tasks]
    for result in results:
        assert_ok(result)
    assert 'Distributed launcher: slurm' in results[0].stdout and 'GPU number: 2' in results[0].stdout
    assert len(pickle.loads(out.read_bytes())) == 6


@pytest.mark.parametrize(
    ('args', 'expected'),
    [
        (['--cfg-options', 'model.backbone.arch=122'], 'model.backbone: arch must be one of'),
        (['--cfg-options', 'foo'], 'argument --cfg-options: expected KEY=VALUE'),
    ],
)
def test_a_mistake_in_every_process_is_one_line(tiny_config: Path, tmp_path: Path, args: list, expected: str) -> None:
    result = run(
        'bash', REPO / 'tools' / 'dist_train.sh', tiny_config, 2, '--work-dir', tmp_path, *args,
        env={'PORT': str(free_port())},
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert errors == [result.stderr.strip().splitlines()[-1]] and expected in errors[0]


@pytest.mark.parametrize(
    ('script', 'args', 'expected'),
    [
        ('dist_train.sh', ['{config}', '0'], "GPUS must be a positive number of processes, got '0'"),
        ('dist_train.sh', ['{config}', 'two'], "GPUS must be a positive number of processes, got 'two'"),
        ('dist_train.sh', ['{missing}', '2'], 'config file not found'),
        ('dist_train.sh', ['{config}'], 'usage: bash tools/dist_train.sh CONFIG GPUS'),
        ('dist_test.sh', ['{config}', '{missing}', '2'], 'checkpoint not found'),
        ('dist_test.sh', ['{missing}', '{missing}', '2'], 'config file not found'),
        ('dist_test.sh', ['{config}', '{missing}', '-1'], "got '-1'"),
    ],
)
def test_dist_scripts_check_their_arguments(
    tiny_config: Path, tmp_path: Path, script: str, args: list[str], expected: str
) -> None:
    paths = dict(config=tiny_config, missing=tmp_path / 'missing')
    result = run('bash', REPO / 'tools' / script, *(arg.format(**paths) for arg in args))
    assert_one_line_error(result, expected)
    assert result.returncode == 2 and result.stdout == ''


def test_a_busy_port_is_one_line(tiny_config: Path) -> None:
    """The second job on a machine meets the first one's port; torchrun would end in an EADDRINUSE traceback."""
    with socket.socket() as first_job:
        first_job.bind(('', 0))
        first_job.listen()
        port = first_job.getsockname()[1]
        result = run('bash', REPO / 'tools' / 'dist_train.sh', tiny_config, 2, env={'PORT': str(port)})
    assert_one_line_error(result, f'PORT {port} is in use on this machine (by another distributed job?)')
    assert result.returncode == 2 and result.stdout == ''


@pytest.mark.parametrize(
    ('env', 'expected'),
    [
        ({'PORT': '29500x'}, "PORT must be a whole number from 1 to 65535, got '29500x'"),
        ({'PORT': '70000'}, "PORT must be a whole number from 1 to 65535, got '70000'"),
        ({'NNODES': '0'}, "NNODES must be a whole number of at least 1, got '0'"),
        ({'NNODES': '2', 'NODE_RANK': '2'}, "NODE_RANK must be a whole number from 0 to 1, got '2'"),
    ],
)
def test_the_node_variables_are_checked(tiny_config: Path, env: dict, expected: str) -> None:
    result = run('bash', REPO / 'tools' / 'dist_train.sh', tiny_config, 2, env=env)
    assert_one_line_error(result, expected)
    assert result.returncode == 2 and result.stdout == ''
