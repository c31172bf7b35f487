"""Training machinery of our own: runs that survive preemption, kills and torn checkpoints."""

from .checkpoints import PREEMPTION_CHECKPOINT, atomic_save_checkpoint, find_resumable_checkpoint
from .hooks import STOP_EXIT_CODE, FaultToleranceHook, TrainingStopped

__all__ = [
    'PREEMPTION_CHECKPOINT',
    'STOP_EXIT_CODE',
    'FaultToleranceHook',
    'TrainingStopped',
    'atomic_save_checkpoint',
    'find_resumable_checkpoint',
]
