"""Lets ``torch.load(weights_only=True)`` read the checkpoints that mmengine's runner writes.

torch >= 2.6 unpickles checkpoints with ``weights_only=True`` by default: only tensors, builtin
containers and allowlisted classes may appear, so a file cannot run code while it loads. mmengine
0.10.7 calls ``torch.load`` without ``weights_only``, and its own checkpoints hold a few objects
beyond that set: ``HistoryBuffer`` (the message hub's logs) and numpy arrays and scalars. Rather
than switching the protection off, this module allowlists exactly those harmless classes, so
resuming, ``load_from`` and testing work while third-party files stay under the same guard.
"""

import pickle
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, name).
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_statistic(owner: Any, name: str) -> Any:
    """``getattr`` restricted to HistoryBuffer's default statistics methods.

    The checkpoint refers to it as ``builtins.getattr``; anything else it asks for is refused.
    """
    if owner is not HistoryBuffer or name not in HISTORY_BUFFER_STATISTICS:
        raise pickle.UnpicklingError(f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint')
    return getattr(HistoryBuffer, name)


def allow_mmengine_checkpoints() -> None:
    """Allowlists the classes of mmengine's own checkpoints for weights-only loading."""
    # The functions numpy's pickles of scalars and arrays call; numpy 1.x files name their module
    # numpy.core.multiarray, numpy 2 files numpy._core.multiarray.
    rebuilders = [np.float64(0).__reduce__()[0], np.zeros(1).__reduce__()[0]]
    named_rebuilders = [
        (function, f'{module}.{function.__name__}')
        for function in rebuilders
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
    ]
    # A dtype is rebuilt as np.dtype(...), then given its state as an instance of its own class.
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All']}
    torch.serialization.add_safe_globals([HistoryBuffer, np.ndarray, np.dtype, *dtype_classes, *named_rebuilders])
    torch.serialization.add_safe_globals([(history_buffer_statistic, 'builtins.getattr')])
