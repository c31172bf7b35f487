"""prepare_distributed: what it leaves alone and how it reads each launcher's variables.

The two-process runs themselves are in tests/test_tools/test_dist_train.py.
"""

import os

import pytest
import torch.distributed as dist
from mmengine.config import Config

from mmdensenet.apis import distributed, prepare_distributed
from mmdensenet.errors import ToolError


def test_single_process_runs_are_left_alone() -> None:
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    prepare_distributed(cfg, 'none')
    assert not dist.is_initialized()
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in cfg


def test_unknown_launcher_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed.torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match='launcher must be one of'):
        prepare_distributed(Config(), 'srun')


@pytest.mark.parametrize(
    ('launcher', 'variables'),
    [
        ('slurm', dict(SLURM_PROCID='3', SLURM_NTASKS='8', SLURM_LOCALID='1', MASTER_ADDR='node0')),
        ('mpi', dict(OMPI_COMM_WORLD_RANK='3', OMPI_COMM_WORLD_SIZE='8', OMPI_COMM_WORLD_LOCAL_RANK='1',
                     MASTER_ADDR='node0')),
    ],
)  # fmt: skip
def test_launcher_variables_become_torchs(monkeypatch: pytest.MonkeyPatch, launcher: str, variables: dict) -> None:
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    distributed._export_torch_env(launcher)
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK']) == ('3', '8', '1')
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('node0', '29500')


def test_mpi_needs_a_master_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv('MASTER_ADDR', raising=False)
    for name, value in dict(OMPI_COMM_WORLD_RANK='0', OMPI_COMM_WORLD_SIZE='2', OMPI_COMM_WORLD_LOCAL_RANK='0').items():
        monkeypatch.setenv(name, value)
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ToolError, match='--launcher mpi: MASTER_ADDR must be set'):
        distributed._export_torch_env('mpi')


def test_launcher_variables_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ToolError, match='--launcher pytorch: RANK, WORLD_SIZE, LOCAL_RANK not set'):
        distributed._export_torch_env('pytorch')
