from collections.abc import Iterator

import pytest
import torch
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope='module')
def _own_default_scope() -> Iterator[None]:
    """Each test module starts from the default scope it found.

    mmdet's and mmseg's APIs set their own scope as the current one and leave it behind, and
    an unscoped ``type='ImageClassifier'`` built later would then be looked up in mmseg.
    """
    before = set(DefaultScope._instance_dict)
    yield
    for name in set(DefaultScope._instance_dict) - before:
        del DefaultScope._instance_dict[name]
