"""Fixtures for the command-line tools: tiny-net configs over tests/conftest.py's tiny_config, a trained run."""

from pathlib import Path

import pytest

from tests.cli_helpers import REPO, assert_ok, python


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
