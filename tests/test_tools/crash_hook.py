"""A hook that kills training right after an epoch's checkpoint, as a crash or preemption would.

Configs of the resume tests import it; it acts only when ``CRASH_AFTER_EPOCH`` is set, so a
resumed run uses the very same config.
"""

import os

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CrashAfterEpoch(Hook):
    priority = 'LOWEST'  # after CheckpointHook has saved the epoch

    def after_train_epoch(self, runner) -> None:
        crash_epoch = os.environ.get('CRASH_AFTER_EPOCH')
        if crash_epoch and runner.epoch + 1 == int(crash_epoch):
            os._exit(3)
