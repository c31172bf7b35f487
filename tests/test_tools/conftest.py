"""Fixtures for the command-line tools: a tiny ImageNet-layout folder and tiny-net configs."""

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import REPO, assert_ok, python
from PIL import Image

NUM_CLASSES = 3
TINY_ARCH = dict(_delete_=True, growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)


def write_imagenet_folder(root: Path, train_per_class: int = 4, val_per_class: int = 2, size: int = 32) -> Path:
    """Writes random images in mmpretrain's ImageNet layout: {train,val}/ and meta/{train,val}.txt."""
    rng = np.random.default_rng(0)
    (root / 'meta').mkdir(parents=True)
    for split, per_class in (('train', train_per_class), ('val', val_per_class)):
        lines = []
        for label in range(NUM_CLASSES):
            for i in range(per_class):
                name = f'class{label}/{split}_{i}.png'
                (root / split / name).parent.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name)
                lines.append(f'{name} {label}\n')
        (root / 'meta' / f'{split}.txt').write_text(''.join(lines))
    return root


@pytest.fixture(scope='session')
def imagenet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imagenet_folder(tmp_path_factory.mktemp('imagenet'))


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory: pytest.TempPathFactory, imagenet_folder: Path) -> Path:
    """The DenseNet-121 ImageNet config with a tiny net, the tiny folder and small batches."""
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


@pytest.fixture(scope='session')
def tiny_cifar_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10 config (32x32 images, the CIFAR stem) with a tiny net: 8 + 4 channels, halved twice."""
    path = tmp_path_factory.mktemp('configs') / 'tiny-densenet_1xb64_cifar10.py'
    base = REPO / 'configs' / 'cifar10' / 'densenet-bc-l100-k12_1xb64_cifar10.py'
    arch = dict(_delete_=True, growth_rate=4, depths=(1, 1, 1), init_channels=8, stem='cifar')
    path.write_text(f'_base_ = [{str(base)!r}]\nmodel = dict(backbone=dict(arch={arch!r}), head=dict(in_channels=9))\n')
    return path


@pytest.fixture(scope='session')
def crashing_config(tmp_path_factory: pytest.TempPathFactory, tiny_config: Path) -> Path:
    """``tiny_config`` with a hook that kills the run after epoch ``$CRASH_AFTER_EPOCH``."""
    path = tmp_path_factory.mktemp('configs') / 'tiny-densenet-crashing_2xb2_in1k.py'
    path.write_text(
        f"""_base_ = [{str(tiny_config)!r}]
custom_imports = dict(imports=['mmdensenet', 'crash_hook'])
custom_hooks = [dict(type='CrashAfterEpoch')]
"""
    )
    return path


@pytest.fixture(scope='session')
def trained(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work dir of 2 epochs of ``tiny_config`` trained by tools/train.py."""
    work_dir = tmp_path_factory.mktemp('work_dir')
    options = ['--cfg-options', 'train_cfg.max_epochs=2']
    assert_ok(python(REPO / 'tools' / 'train.py', tiny_config, '--work-dir', work_dir, *options))
    return work_dir
