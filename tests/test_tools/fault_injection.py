"""A hook through which the fault-tolerance tests make a training subprocess meet its faults.

It acts only on the ``FAULT_*`` variables that are set, so a resumed run uses the same config:

- ``FAULT_PAUSE_AT_ITER=k``: before iteration k (0-based), print ``FAULT paused`` and wait for a
  signal, which the test then sends from outside.
- ``FAULT_PAUSE_AT_SAVE=n,m``: the same at the start of this process's n-th (and m-th) checkpoint save.
- ``FAULT_TEAR_SAVE=n``: the n-th save writes half of the checkpoint's bytes, then SIGKILLs the process.
- ``FAULT_RANK=r``: only rank r does any of this.
"""

import os
import signal
import time

from mmengine.dist import get_rank
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _numbers(name: str) -> list[int]:
    return [int(n) for n in os.environ.get(name, '').split(',') if n]


def _pause() -> None:
    """Waits until SIGTERM or SIGINT arrives and has gone to the handler installed for it."""
    received = []
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}

    def note(signum: int, frame) -> None:
        received.append(signum)
        if callable(handlers[signum]):
            handlers[signum](signum, frame)

    for signum in handlers:
        signal.signal(signum, note)
    print('FAULT paused', flush=True)  # the test sends the signal once it reads this
    while not received:
        time.sleep(0.01)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _torn_put(backend: LocalBackend, obj: bytes, filepath: str) -> None:
    with open(filepath, 'wb') as f:
        f.write(obj[: len(obj) // 2])
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class InjectFaults(Hook):
    priority = 'HIGHEST'  # pauses before the iteration starts

    def __init__(self) -> None:
        self.saves = 0
        self.active = 'FAULT_RANK' not in os.environ or int(os.environ['FAULT_RANK']) == get_rank()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.active:
            return
        if runner.iter in _numbers('FAULT_PAUSE_AT_ITER'):
            _pause()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.active:
            return
        self.saves += 1
        if self.saves in _numbers('FAULT_TEAR_SAVE'):
            LocalBackend.put = _torn_put
        if self.saves in _numbers('FAULT_PAUSE_AT_SAVE'):
            _pause()
