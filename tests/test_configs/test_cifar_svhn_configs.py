"""The paper's CIFAR-10, CIFAR-100 (with and without augmentation) and SVHN configs."""

from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
ARCHS = ('bc-l100-k12', 'bc-l250-k24', 'bc-l190-k40', 'l40-k12', 'l100-k12', 'l100-k24')
# variant: (folder, num_classes, augmented, epochs)
VARIANTS = {
    'cifar10': ('cifar10', 10, True, 300),
    'cifar10-noaug': ('cifar10', 10, False, 300),
    'cifar100': ('cifar100', 100, True, 300),
    'cifar100-noaug': ('cifar100', 100, False, 300),
    'svhn': ('svhn', 10, False, 40),
}


def config_path(arch: str, variant: str) -> Path:
    return CONFIGS / VARIANTS[variant][0] / f'densenet-{arch}_1xb64_{variant}.py'


def test_there_is_a_config_for_every_net_and_dataset() -> None:
    expected = {config_path(arch, variant) for arch in ARCHS for variant in VARIANTS}
    found = {path for folder in ('cifar10', 'cifar100', 'svhn') for path in (CONFIGS / folder).glob('*.py')}
    assert found == expected


@pytest.mark.parametrize('arch', ARCHS)
def test_model_bases_build_the_papers_nets(arch: str) -> None:
    cfg = Config.fromfile(CONFIGS / '_base_' / 'models' / f'densenet-{arch}.py')
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    assert model.backbone.out_channels == (model.head.fc.in_features,)


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('arch', ARCHS)
def test_config_follows_the_papers_recipe(arch: str, variant: str) -> None:
    _, num_classes, augmented, epochs = VARIANTS[variant]
    cfg = Config.fromfile(config_path(arch, variant))
    assert cfg.model.backbone.arch == arch
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == num_classes
    assert cfg.model.backbone.get('drop_rate', 0) == (0 if augmented else 0.2)
    train_steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert ('RandomCrop' in train_steps and 'RandomFlip' in train_steps) == augmented
    assert cfg.train_dataloader.batch_size == cfg.auto_scale_lr.base_batch_size == 64
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.lr, optimizer.momentum, optimizer.nesterov, optimizer.weight_decay) == (0.1, 0.9, True, 1e-4)
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler.milestones == [epochs // 2, epochs * 3 // 4]
    assert cfg.param_scheduler.gamma == 0.1
