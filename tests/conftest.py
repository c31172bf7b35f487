"""Fixtures for every test: a fixed seed, the default scope, a tiny ImageNet-layout folder and a config over it."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope

from tests.cli_helpers import REPO, TINY_ARCH, write_imagenet_folder


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


@pytest.fixture(scope='session')
def imagenet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imagenet_folder(tmp_path_factory.mktemp('imagenet'))


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory: pytest.TempPathFactory, imagenet_folder: Path) -> Path:
    """The DenseNet-121 ImageNet config with a tiny net, the tiny folder, batches of 2 and 4 epochs."""
    path = tmp_path_factory.mktemp('configs') / 'tiny-densenet_2xb2_in1k.py'
    path.write_text(
        f"""_base_ = [{str(REPO / 'configs' / 'densenet121_4xb256_in1k.py')!r}]
model = dict(backbone=dict(arch={TINY_ARCH!r}), head=dict(in_channels=51))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root={str(imagenet_folder)!r})
)
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root={str(imagenet_folder)!r})
)
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=4)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
"""
    )
    return path
