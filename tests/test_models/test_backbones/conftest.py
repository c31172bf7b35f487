"""Fixtures for the backbone tests."""

import pytest
import torch

from mmdensenet.models.backbones.densenet import BlockStrategy, _DenseBlock


@pytest.fixture
def strategies(monkeypatch: pytest.MonkeyPatch) -> list[BlockStrategy]:
    """Records the strategy each dense block's forward takes, in the order they run."""
    chosen = []
    choose = _DenseBlock.strategy

    def recorded(block: _DenseBlock, x: torch.Tensor) -> BlockStrategy:
        chosen.append(choose(block, x))
        return chosen[-1]

    monkeypatch.setattr(_DenseBlock, 'strategy', recorded)
    return chosen
