"""Testing a checkpoint on a config's test set, as ``tools/test.py`` runs it: its flags applied to the config."""

import functools
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Optional, Union

import mmengine
from mmengine.config import Config, ConfigDict
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from mmengine.runner import Runner

from ..errors import ToolError
from ..outputs import atomic_output, check_output, writable_folder
from ..weights.checkpoint_io import checkpoint_source
from .config import check_whole_numbers, load_config, require_keys, set_dataloaders
from .runner_setup import run_job

# The keys testing needs, in the order the Runner builds them (errors are attributed in this order).
TEST_KEYS = ('model', 'test_dataloader', 'test_evaluator', 'test_cfg')
TEST_ORDER = TEST_KEYS
TEST_WHOLE_NUMBERS = {'test_dataloader.num_workers': 0}
# What ``--out`` may be: predictions are pickled; metrics go to any format mmengine.dump writes.
OUT_SUFFIXES = {'pred': ('.pkl', '.pickle'), 'metrics': ('.pkl', '.pickle', '.json', '.yaml', '.yml')}


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
    local_rank: Optional[int] = None,
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
        local_rank: The process's local rank where a launcher passes it as ``--local-rank``.
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
    require_keys(cfg, TEST_KEYS, 'test')
    check_whole_numbers(cfg, TEST_WHOLE_NUMBERS)
    cfg.load_from = checkpoint
    cfg.resume = False
    if amp:
        cfg.setdefault('test_cfg', {})['fp16'] = True
    _visualize(cfg, show, show_dir, interval, wait_time)
    if tta:
        _test_time_augmentation(cfg)
    if no_pin_memory:
        set_dataloaders(cfg, pin_memory=False)
    job = functools.partial(_test, out=out, out_item=out_item)
    return run_job(cfg, launcher, job, TEST_ORDER, 'checkpoint', local_rank)
