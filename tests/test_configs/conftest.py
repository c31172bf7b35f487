"""Fixtures for the config tests."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope='module')
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a busy 2-core machine, two spinning threads slow convolutions 100-fold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
