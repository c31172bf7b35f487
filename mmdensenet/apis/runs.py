"""Training and testing from a config, as ``tools/train.py`` and ``tools/test.py`` run them."""

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional, Union

import mmengine
from mmengine.config import Config, ConfigDict
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from mmengine.registry import OPTIMIZERS
from mmengine.runner import Runner

from ..engine import find_resumable_checkpoint
from ..errors import ToolError
from ..outputs import atomic_output, check_output, writable_folder
from .config import is_registered, load_config
from .loading import checkpoint_source
from .runner import run

# The keys each job needs, in the order the Runner builds them (errors are attributed in this order).
TRAIN_KEYS = ('model', 'train_dataloader', 'train_cfg', 'optim_wrapper')
TRAIN_ORDER = (*TRAIN_KEYS, 'param_scheduler', 'val_dataloader', 'val_evaluator', 'val_cfg')
TEST_KEYS = ('model', 'test_dataloader', 'test_evaluator', 'test_cfg')
TEST_ORDER = TEST_KEYS
DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# Settings that mmengine's Runner and torch use without checking them first, where a config sets
# them: whole numbers, with their least value, of each job, and the optimizer's numbers.
TRAIN_WHOLE_NUMBERS = {
    'train_cfg.max_epochs': 1,
    'train_cfg.max_iters': 1,
    'train_cfg.val_interval': 1,
    'train_dataloader.num_workers': 0,
    'val_dataloader.num_workers': 0,
}
TEST_WHOLE_NUMBERS = {'test_dataloader.num_workers': 0}
REAL_SETTINGS = tuple(f'optim_wrapper.optimizer.{name}' for name in ('lr', 'momentum', 'weight_decay'))
# What ``--out`` may be: predictions are pickled; metrics go to any format mmengine.dump writes.
OUT_SUFFIXES = {'pred': ('.pkl', '.pickle'), 'metrics': ('.pkl', '.pickle', '.json', '.yaml', '.yml')}


def _setting(cfg: Config, key: str) -> Any:
    """The value of the dotted ``key`` in ``cfg``, or None where it is not set."""
    top, *parts = key.split('.')
    value = cfg.get(top)
    for part in parts:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _check_whole_numbers(cfg: Config, settings: dict[str, int]) -> None:
    """Refuses a setting that is not a whole number of at least the least value ``settings`` give it."""
    for key, least in settings.items():
        value = _setting(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ToolError(f'{key} must be a whole number of at least {least}, got {value!r}')


def _check_optimizer(cfg: Config) -> None:
    """Refuses an optimizer whose numbers are not numbers (torch would compare them) or whose type is unknown."""
    for key in REAL_SETTINGS:
        value = _setting(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ToolError(f'{key} must be a number, got {value!r}')
    optimizer = _setting(cfg, 'optim_wrapper.optimizer.type')
    if isinstance(optimizer, str) and not is_registered(OPTIMIZERS, optimizer, cfg.get('default_scope')):
        raise ToolError(
            f"optim_wrapper.optimizer.type: no optimizer is registered as {optimizer!r}; e.g. 'SGD', 'AdamW'"
        )


def _require(cfg: Config, keys: tuple[str, ...], job: str) -> None:
    missing = [key for key in keys if cfg.get(key) is None]
    if missing:
        raise ToolError(f'{cfg.filename} cannot {job}: it sets no {", ".join(missing)}')


def _set_dataloaders(cfg: Config, **settings: bool) -> None:
    for loader in DATALOADERS:
        if cfg.get(loader) is not None:
            cfg[loader].update(settings)


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
    """
    cfg = load_config(config, cfg_options, work_dir)
    _require(cfg, TRAIN_KEYS, 'train')
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
        _set_dataloaders(cfg, pin_memory=False)
    if no_persistent_workers:
        _set_dataloaders(cfg, persistent_workers=False)
    _check_whole_numbers(cfg, TRAIN_WHOLE_NUMBERS)
    _check_optimizer(cfg)
    what = 'checkpoint to resume from' if resume else 'load_from'
    return run(cfg, launcher, _train, TRAIN_ORDER, what)


def _train(runner: Runner) -> Runner:
    runner.train()
    return runner


def _visualize(
    cfg: Config, show: bool, show_dir: Optional[str], interval: Optional[int], wait_time: Optional[float]
) -> None:
    """Switches on the config's visualization hook for ``--show`` and ``--show-dir``."""
    if not (show or show_dir):
        if interval is not None or wait_time is not None:
            raise ToolError('--interval and --wait-time apply only with --show or --show-dir')
        return
    if interval is not None and interval < 1:
        raise ToolError(f'--interval must be positive, got {interval}')
    if show_dir is not None:
        writable_folder(show_dir, '--show-dir')
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if not isinstance(hook, dict):
        raise ToolError(f'--show and --show-dir need default_hooks.visualization, which {cfg.filename} does not set')
    hook.update(enable=True, show=show, out_dir=show_dir, interval=interval or 1, wait_time=wait_time or 2)


def _test_time_augmentation(cfg: Config) -> None:
    """Wraps the model in the config's ``tta_model`` and tests on its ``tta_pipeline``, as mmpretrain's --tta."""
    for key in ('tta_model', 'tta_pipeline'):
        if cfg.get(key) is None:
            raise ToolError(f'--tta: {cfg.filename} defines no {key}')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def _test(runner: Runner, out: Optional[str], out_item: str) -> dict:
    """Runs the test; rank 0 writes ``out`` through a temporary file, renamed into place when all is done."""
    if out is None:
        return runner.test()
    writes = is_main_process()
    with atomic_output(Path(out)) if writes else nullcontext(Path(out)) as target:
        if out_item == 'pred':  # every process adds it: evaluation gathers results metric by metric
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=os.fspath(target)))
        metrics = runner.test()
        if out_item == 'metrics' and writes:
            mmengine.dump(metrics, target)
    return metrics


def evaluate(
    config: Union[str, Path],
    checkpoint: str,
    work_dir: Optional[str] = None,
    out: Optional[str] = None,
    out_item: Optional[str] = None,
    amp: bool = False,
    tta: bool = False,
    show: bool = False,
    show_dir: Optional[str] = None,
    interval: Optional[int] = None,
    wait_time: Optional[float] = None,
    no_pin_memory: bool = False,
    cfg_options: Optional[dict] = None,
    launcher: str = 'none',
) -> dict:
    """Evaluates ``checkpoint`` on the config's test set and returns the metrics.

    Args:
        config: Path of the config file.
        checkpoint: Path or URL of the weights; they must fit the model.
        work_dir: Where the logs go; see :func:`load_config`.
        out: A file to dump the predictions (``.pkl``) or the metrics (``out_item='metrics'``) to.
        out_item: 'pred' (the default) or 'metrics'.
        amp: Test with automatic mixed precision.
        tta: Test-time augmentation with the config's ``tta_model`` and ``tta_pipeline``.
        show: Show each prediction in a window.
        show_dir: Draw the predictions into this folder.
        interval: With ``show`` or ``show_dir``, draw every ``interval``-th image (default 1).
        wait_time: With ``show``, how long each window stays, in seconds (default 2).
        no_pin_memory: Turn off the dataloaders' ``pin_memory``.
        cfg_options: Overrides of config keys.
        launcher: 'none', 'pytorch' (torchrun), 'slurm' or 'mpi'.
    """
    if out_item is not None and out is None:
        raise ToolError('--out-item needs --out')
    out_item = out_item or 'pred'
    if out is not None and Path(out).suffix not in OUT_SUFFIXES[out_item]:
        raise ToolError(f'--out must be a {" or ".join(OUT_SUFFIXES[out_item])} file for {out_item}, got {out}')
    checkpoint_source(checkpoint)
    cfg = load_config(config, cfg_options, work_dir)
    if out is not None:
        check_output(out, config, checkpoint)
        writable_folder(Path(out).parent, '--out')
    _require(cfg, TEST_KEYS, 'test')
    _check_whole_numbers(cfg, TEST_WHOLE_NUMBERS)
    cfg.load_from = checkpoint
    cfg.resume = False
    if amp:
        cfg.setdefault('test_cfg', {})['fp16'] = True
    _visualize(cfg, show, show_dir, interval, wait_time)
    if tta:
        _test_time_augmentation(cfg)
    if no_pin_memory:
        _set_dataloaders(cfg, pin_memory=False)
    return run(cfg, launcher, lambda runner: _test(runner, out, out_item), TEST_ORDER, 'checkpoint')
