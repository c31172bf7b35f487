"""Hooks of mmdensenet, registered in ``mmdensenet.registry.HOOKS``."""

from .fault_tolerance_hook import STOP_EXIT_CODE, FaultToleranceHook, TrainingStopped

__all__ = ['STOP_EXIT_CODE', 'FaultToleranceHook', 'TrainingStopped']
