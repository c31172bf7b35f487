"""Training and testing from a config, as ``tools/train.py`` and ``tools/test.py`` run them."""

import os
from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config
from mmengine.runner import Runner

from ..cli import ToolError, reraise_as_tool_error
from ..engine import find_resumable_checkpoint, require_writable_dir
from ..weights import read_checkpoint
from .distributed import prepare_distributed


def _check_file(path: Union[str, Path], what: str) -> None:
    if not Path(path).is_file():
        raise ToolError(f'{what} not found: {path}')


def load_config(config: Union[str, Path], cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Config:
    """Reads a config, applies ``--cfg-options`` and sets the work dir.

    The work dir defaults to ``work_dirs/<config name>`` when neither ``work_dir`` nor the
    config gives one.
    """
    _check_file(config, 'config file')
    with reraise_as_tool_error(f'cannot read config {config}'):
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(config).stem)
    return cfg


def _build_runner(cfg: Config, launcher: str) -> Runner:
    cfg.launcher = launcher
    prepare_distributed(cfg, launcher)
    return Runner.from_cfg(cfg)


def train(
    config: Union[str, Path],
    work_dir: Optional[str] = None,
    resume: Union[bool, str] = False,
    amp: bool = False,
    auto_scale_lr: bool = False,
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
        cfg_options: Overrides of config keys, e.g. ``{'train_dataloader.batch_size': 32}``.
        launcher: 'none', 'pytorch' (torchrun), 'slurm' or 'mpi'.
    """
    cfg = load_config(config, cfg_options, work_dir)
    if resume is True:
        resume = find_resumable_checkpoint(cfg.work_dir) or False
    if isinstance(resume, str):
        _check_file(resume, 'checkpoint to resume from')
        cfg.load_from = resume
    cfg.resume = bool(resume)
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ToolError(f'{config} sets no auto_scale_lr.base_batch_size to scale the lr from')
        cfg.auto_scale_lr.enable = True
    require_writable_dir(cfg.work_dir)
    runner = _build_runner(cfg, launcher)
    runner.train()
    return runner


def evaluate(
    config: Union[str, Path],
    checkpoint: str,
    work_dir: Optional[str] = None,
    out: Optional[str] = None,
    cfg_options: Optional[dict] = None,
    launcher: str = 'none',
) -> dict:
    """Evaluates ``checkpoint`` on the config's test set and returns the metrics.

    Args:
        config: Path of the config file.
        checkpoint: Path or URL of the weights.
        work_dir: Where the logs go; see :func:`load_config`.
        out: A ``.pkl`` file to dump the predictions to.
        cfg_options: Overrides of config keys.
        launcher: 'none', 'pytorch' (torchrun), 'slurm' or 'mpi'.
    """
    if out is not None and Path(out).suffix not in ('.pkl', '.pickle'):
        raise ToolError(f'--out must be a .pkl or .pickle file, got {out}')
    if '://' not in checkpoint:
        _check_file(checkpoint, 'checkpoint')
        read_checkpoint(checkpoint)  # a broken or unsafe file fails here with one line, before any work
    cfg = load_config(config, cfg_options, work_dir)
    cfg.load_from = checkpoint
    if out is not None:
        dump = dict(type='DumpResults', out_file_path=os.fspath(out))
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dump]
    return _build_runner(cfg, launcher).test()
