"""Training from a config, as ``tools/train.py`` runs it: its flags applied to the config, which is checked first."""

from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config
from mmengine.registry import OPTIMIZERS
from mmengine.runner import Runner

from ..engine import find_resumable_checkpoint
from ..errors import ToolError
from .config import check_whole_numbers, is_registered, load_config, require_keys, set_dataloaders, setting
from .runner_setup import run_job

# The keys training needs, in the order the Runner builds them (errors are attributed in this order).
TRAIN_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper')
TRAIN_ORDER = (*TRAIN_KEYS, 'param_scheduler', 'val_dataloader', 'val_evaluator', 'val_cfg')
# Settings that mmengine's Runner and torch use without checking them first, where a config sets
# them: whole numbers, with their least value, and the optimizer's numbers.
TRAIN_WHOLE_NUMBERS = {
    'train_cfg.max_epochs': 1,
    'train_cfg.max_iters': 1,
    'train_cfg.val_interval': 1,
    'train_dataloader.num_workers': 0,
    'val_dataloader.num_workers': 0,
}
REAL_SETTINGS = tuple(f'optim_wrapper.optimizer.{name}' for name in ('lr', 'momentum', 'weight_decay'))


def _check_optimizer(cfg: Config) -> None:
    """Refuses an optimizer whose numbers are not numbers (torch would compare them) or whose type is unknown."""
    for key in REAL_SETTINGS:
        value = setting(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ToolError(f'{key} must be a number, got {value!r}')
    optimizer = setting(cfg, 'optim_wrapper.optimizer.type')
    if isinstance(optimizer, str) and not is_registered(OPTIMIZERS, optimizer, cfg.get('default_scope')):
        raise ToolError(
            f"optim_wrapper.optimizer.type: no optimizer is registered as {optimizer!r}; e.g. 'SGD', 'AdamW'"
        )


def train(
    config: Union[str, Path],
    work_dir: Optional[str] = None,
    resume: Union[bool, str] = False,
    amp: bool = False,
    auto_scale_lr: bool = False,
    no_validate: bool = False,
    no_pin_memory: bool = False,
    no_persistent_workers: bool = False,
    cfg_options: Optional[dict] = None,
    launcher: str = 'none',
    local_rank: Optional[int] = None,
) -> Runner:
    """Trains the model of ``config`` and returns the finished runner.

    Args:
        config: Path of the config file.
        work_dir: Where logs and checkpoints go; see :func:`load_config`.
        resume: ``True`` continues from the newest checkpoint in the work dir that reads correctly
            (from scratch if there is none), a path from that checkpoint; either restores the
            model, optimizer, schedule, epoch and iteration.
        amp: Train with automatic mixed precision.
        auto_scale_lr: Scale the lr by (total batch size) / ``auto_scale_lr.base_batch_size``.
        no_validate: Do not validate during training.
        no_pin_memory: Turn off the dataloaders' ``pin_memory``.
        no_persistent_workers: Turn off the dataloaders' ``persistent_workers``.
        cfg_options: Overrides of config keys, e.g. ``{'train_dataloader.batch_size': 32}``.
        launcher: 'none', 'pytorch' (torchrun), 'slurm' or 'mpi'.
        local_rank: The process's local rank where a launcher passes it as ``--local-rank``.
    """
    cfg = load_config(config, cfg_options, work_dir)
    require_keys(cfg, TRAIN_KEYS, 'train')
    if resume is True:
        resume = find_resumable_checkpoint(cfg.work_dir) or False
    if isinstance(resume, str):
        cfg.load_from = resume
    cfg.resume = bool(resume)
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise ToolError(f'--auto-scale-lr: {config} sets no auto_scale_lr.base_batch_size to scale the lr from')
        cfg.auto_scale_lr.enable = True
    if no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if no_pin_memory:
        set_dataloaders(cfg, pin_memory=False)
    if no_persistent_workers:
        set_dataloaders(cfg, persistent_workers=False)
    check_whole_numbers(cfg, TRAIN_WHOLE_NUMBERS)
    _check_optimizer(cfg)
    what = 'checkpoint to resume from' if resume else 'load_from'
    return run_job(cfg, launcher, _train, TRAIN_ORDER, what, local_rank)


def _train(runner: Runner) -> Runner:
    runner.train()
    return runner
