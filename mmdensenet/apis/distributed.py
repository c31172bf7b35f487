"""Distributed runs without a GPU.

mmengine 0.10.7 initialises every launcher with ``torch.cuda.set_device`` and wraps the model
in DDP with ``device_ids=[LOCAL_RANK]``, both of which fail on a CPU-only machine. There we
start a gloo process group ourselves, before the Runner (which then skips its own set-up), and
let DDP run on CPU. With GPUs nothing changes: mmengine sets up NCCL as configured.
"""

import datetime
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.config import Config

from ..errors import ToolError

# Where each launcher publishes (rank, world size, local rank).
_LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'),
}


def _export_torch_env(launcher: str) -> None:
    """Sets the variables of torch's ``env://`` rendezvous from the launcher's own."""
    missing = [name for name in _LAUNCHER_ENV[launcher] if name not in os.environ]
    if missing:
        raise ToolError(f'--launcher {launcher}: {", ".join(missing)} not set; start the tool through that launcher')
    for source, target in zip(_LAUNCHER_ENV[launcher], _LAUNCHER_ENV['pytorch']):
        os.environ[target] = os.environ[source]
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        if launcher != 'slurm':
            raise ToolError(f'--launcher {launcher}: MASTER_ADDR must be set')
        nodes = os.environ['SLURM_NODELIST']
        hosts = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True, text=True, check=True)
        os.environ['MASTER_ADDR'] = hosts.stdout.split()[0]


def prepare_distributed(cfg: Config, launcher: str) -> None:
    """Starts a gloo process group for a CPU-only distributed run and configures DDP for it.

    Does nothing for ``launcher='none'``, with CUDA available, or when a group already exists.
    """
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher not in _LAUNCHER_ENV:
        raise ValueError(f'launcher must be one of {["none", *_LAUNCHER_ENV]}, got {launcher!r}')
    _export_torch_env(launcher)
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    timeout = dist_cfg.get('timeout')
    dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **({'timeout': datetime.timedelta(seconds=timeout)} if timeout is not None else {}),
    )
    wrapper = cfg.get('model_wrapper_cfg') or {}
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None  # the module stays on the CPU
    cfg.model_wrapper_cfg = wrapper
