"""FaultToleranceHook: atomic checkpoints, and a resumable stop on SIGTERM or SIGINT."""

import functools
import os
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from mmengine.dist import all_gather_object, all_reduce, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from ...registry import HOOKS
from ...weights.checkpoint_io import CheckpointError
from ..checkpoints import PREEMPTION_CHECKPOINT, atomic_save_checkpoint, write_last_checkpoint
from ..position import RestOfEpoch, rng_state

# The exit status of a run stopped by a signal: sysexits.h's EX_TEMPFAIL, "try again later".
STOP_EXIT_CODE = 75
# Where the preemption checkpoint's meta keeps the position inside the epoch.
POSITION_KEY = 'position_in_epoch'


class TrainingStopped(SystemExit):
    """Ends every rank of a run stopped by a signal, once its checkpoint is saved, with STOP_EXIT_CODE."""

    def __init__(self) -> None:
        super().__init__(STOP_EXIT_CODE)


def _leave_signals_to_parent(signals: tuple[int, ...], init_fn: Optional[Callable[[int], None]], worker: int) -> None:
    """A DataLoader worker's init function: ``signals`` from anyone but the worker's parent are ignored.

    The parent's own SIGTERM (how multiprocessing and torch end workers) still ends the worker, as
    torch's handler, which this replaces, does. The signals are blocked in every thread and a
    thread takes them, because only ``sigwaitinfo`` tells who sent one.
    """
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)

    def take_signals() -> None:
        while True:
            if signal.sigwaitinfo(signals).si_pid == parent:
                os._exit(0)

    threading.Thread(target=take_signals, name='stop-signals', daemon=True).start()
    if init_fn is not None:
        init_fn(worker)


@HOOKS.register_module()
class FaultToleranceHook(Hook):
    """Lets a run survive preemption, kills and torn checkpoints.

    - Every checkpoint the runner saves (CheckpointHook's by epoch, by iteration and best, and
      this hook's) goes to a temporary file beside it, is flushed to disk, then renamed.
    - On one of ``signals``, training finishes the iteration under way; all ranks agree to stop,
      rank 0 saves ``preempted.pth`` (model, optimizer, schedule, message hub, epoch, iteration,
      the position inside the epoch and the random generators' states) and names it in
      ``last_checkpoint``, and every process exits with ``STOP_EXIT_CODE`` (75). Further signals
      are ignored; SIGKILL still stops at once, and cannot tear a checkpoint.
    - A run resumed from ``preempted.pth`` by an epoch-based loop continues the epoch after the
      batches already trained on, with the sampler's seed and the random generators' states of the
      stopped run. (mmengine's iteration-based loop skips them itself, by loading them.)

    Args:
        signals: The names of the signals that stop training.
    """

    priority = 'LOWEST'  # every other hook is done with the iteration when this one stops the run

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGINT')) -> None:
        unknown = [name for name in signals if name not in signal.Signals.__members__]
        if unknown:
            raise ValueError(f'unknown signals {unknown}; signals are named like SIGTERM')
        self.signals = tuple(signal.Signals[name] for name in signals)
        self._received: Optional[signal.Signals] = None
        self._previous_handlers: dict[signal.Signals, Any] = {}
        self._loaded_position: Optional[dict] = None
        # The batch sampler whose sampler a RestOfEpoch replaces, its own sampler, and the skipped batches.
        self._resumed_epoch: Optional[tuple[Any, Any, int]] = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._received is None:
            self._received = signal.Signals(signum)

    def before_run(self, runner) -> None:
        # Every checkpoint goes through Runner.save_checkpoint, whoever asks for it, so wrapping that
        # one method makes them all atomic. A hook is all a config then needs, whichever tool builds
        # the runner (ours, mim's, mmdet's or mmseg's train.py); a Runner subclass would need
        # runner_type in every config and a tool that honours it, and a file backend would need
        # backend_args on every CheckpointHook. Only rank 0 writes (save_checkpoint is master_only).
        if is_main_process():
            runner.save_checkpoint = functools.partial(atomic_save_checkpoint, runner.save_checkpoint)
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('training runs outside the main thread: signals will not stop it cleanly')
            return
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def after_run(self, runner) -> None:
        vars(runner).pop('save_checkpoint', None)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        self._previous_handlers.clear()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_position = checkpoint.get('meta', {}).get(POSITION_KEY)

    def before_train(self, runner) -> None:
        self._leave_signals_to_main_process(runner)
        position, self._loaded_position = self._loaded_position, None
        # A checkpoint given as load_from (not resumed) leaves the runner at iteration 0.
        if position is None or position['iter'] != runner.iter:
            return
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return
        if position['world_size'] != get_world_size():
            runner.logger.warning(
                f'the stopped run had {position["world_size"]} processes and this one has {get_world_size()}: '
                f'epoch {runner.epoch + 1} starts over instead of continuing where it stopped'
            )
            return
        loader = runner.train_dataloader
        if position['sampler_seed'] is not None and hasattr(loader.sampler, 'seed'):
            loader.sampler.seed = position['sampler_seed']  # drawn at random when the config sets no seed
        batch_sampler, skipped = loader.batch_sampler, position['batches_done']
        runner.logger.info(
            f'epoch {runner.epoch + 1}: {skipped} of its {len(batch_sampler)} batches were trained on '
            'before the stop; continuing with the rest'
        )
        self._resumed_epoch = (batch_sampler, batch_sampler.sampler, skipped)
        batch_sampler.sampler = RestOfEpoch(
            batch_sampler.sampler, skipped * batch_sampler.batch_size, position['rng'][get_rank()]
        )

    def _leave_signals_to_main_process(self, runner) -> None:
        """Makes the loaders' worker processes ignore stop signals that do not come from their parent.

        slurm signals every process of a job step, and torch's workers die of a SIGTERM that does
        not come from their parent, which would end the run before it could save. The workers of
        mmengine's iteration-based loop start with the loop, before any hook runs, and keep torch's
        behaviour.
        """
        loaders = [runner.train_dataloader] + ([runner.val_loop.dataloader] if runner.val_loop is not None else [])
        for loader in loaders:
            if loader.num_workers > 0:
                loader.worker_init_fn = functools.partial(_leave_signals_to_parent, self.signals, loader.worker_init_fn)

    def after_train_epoch(self, runner) -> None:
        if self._resumed_epoch is not None:
            batch_sampler, sampler, _ = self._resumed_epoch
            batch_sampler.sampler = sampler
            self._resumed_epoch = None

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        # One all-reduce of one number per iteration: every rank stops after the same iteration.
        received = torch.tensor(int(self._received or 0))
        all_reduce(received, op='max')
        if received:
            skipped = self._resumed_epoch[2] if self._resumed_epoch is not None else 0
            self._stop(runner, signal.Signals(int(received)), skipped + batch_idx + 1)

    def _stop(self, runner, received: signal.Signals, batches_done: int) -> None:
        position = dict(
            iter=runner.iter + 1,
            batches_done=batches_done,
            world_size=get_world_size(),
            rng=all_gather_object(rng_state()),
            sampler_seed=getattr(runner.train_dataloader.sampler, 'seed', None),
        )
        path = str(Path(runner.work_dir) / PREEMPTION_CHECKPOINT)
        runner.logger.info(f'{received.name} received: saving {path}')
        error = None
        try:
            meta = {POSITION_KEY: position}
            runner.save_checkpoint(runner.work_dir, PREEMPTION_CHECKPOINT, meta=meta, by_epoch=False)
            if is_main_process():
                write_last_checkpoint(runner.work_dir, path)
        except CheckpointError as exc:
            error = exc
        # Also the barrier that keeps the other ranks (and torchrun) from ending rank 0's save.
        failed = torch.tensor(int(error is not None))
        all_reduce(failed, op='max')
        if error is not None:
            raise error
        if failed:
            raise CheckpointError(f'stopped by {received.name}, but rank 0 could not save {path}')
        runner.logger.warning(
            f'stopped by {received.name} after iteration {runner.iter + 1} (epoch {runner.epoch + 1}); '
            f'saved {path}; to continue, run the same command with --resume'
        )
        raise TrainingStopped
