"""RestOfEpoch: a DataLoader resumed inside an epoch yields what an uninterrupted one would have."""

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import DataLoader, Dataset

from mmdensenet.engine.position import RestOfEpoch, rng_state


class RandomlyAugmented(Dataset):
    """Ten samples, each drawn with numpy's and torch's global generators, as augmentations are."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> tuple:
        return index, np.random.rand(), torch.rand(())


def test_the_rest_of_an_epoch_repeats_the_uninterrupted_batches() -> None:
    dataset = RandomlyAugmented()
    loader = DataLoader(dataset, batch_size=2, sampler=DefaultSampler(dataset, shuffle=True, seed=3))
    loader.sampler.set_epoch(1)
    torch.manual_seed(0)
    np.random.seed(0)
    uninterrupted, states = [], []
    for batch in loader:
        uninterrupted.append(batch)
        states.append(rng_state())  # where a stop after this batch saves the generators

    # A resumed run: other generator states, and the first two batches done.
    torch.manual_seed(1)
    np.random.seed(1)
    loader.batch_sampler.sampler = RestOfEpoch(loader.sampler, skip=2 * 2, rng=states[1])
    rest = list(loader)

    assert len(loader) == 3 and len(rest) == 3
    for batch, expected in zip(rest, uninterrupted[2:]):
        assert all(torch.equal(a, b) for a, b in zip(batch, expected))


def test_an_epoch_stopped_after_its_last_batch_has_nothing_left() -> None:
    dataset = RandomlyAugmented()
    loader = DataLoader(dataset, batch_size=4, sampler=DefaultSampler(dataset, shuffle=False))
    loader.batch_sampler.sampler = RestOfEpoch(loader.sampler, skip=10)
    assert len(loader) == 0 and list(loader) == []
