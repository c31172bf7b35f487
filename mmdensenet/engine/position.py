"""Where a run stands inside an epoch: what a resumed run needs to continue it exactly."""

import itertools
import random
from collections.abc import Iterator, Sized
from typing import Any, Optional

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's global random number generators."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Puts back the generators' states that :func:`rng_state` returned."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class RestOfEpoch:
    """The samples of an epoch that a stopped run had not trained on yet, in the same order.

    It stands in for a batch sampler's ``sampler`` during the first epoch of a resumed run. The
    DataLoader first asks it for indices right before it loads the first batch: the point at which
    the stopped run took ``rng``. Restoring it there gives the rest of the epoch the random draws
    (augmentation in the main process, dropout) that an uninterrupted run would have had.

    Args:
        sampler: The epoch's sampler, e.g. mmengine's DefaultSampler.
        skip: How many of its samples the stopped run had trained on.
        rng: The generators' states when the run stopped (:func:`rng_state`), if known.
    """

    def __init__(self, sampler: Sized, skip: int, rng: Optional[dict[str, Any]] = None) -> None:
        self.sampler = sampler
        self.skip = skip
        self.rng = rng

    def __iter__(self) -> Iterator[int]:
        if self.rng is not None:
            restore_rng(self.rng)
            self.rng = None
        yield from itertools.islice(self.sampler, self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)
