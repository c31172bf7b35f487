"""Helpers shared by the tests of weights in and out (tests/test_weights, the converter's tests)."""

import os
import re
from pathlib import Path
from typing import Union

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from mmdensenet.models import DenseNet

REPO = Path(__file__).resolve().parents[1]
# The file names of torchvision's published DenseNet weights, as their URLs end.
TORCHVISION_FILES = {
    '121': 'densenet121-a639ec97.pth',
    '169': 'densenet169-b2777c0a.pth',
    '201': 'densenet201-c1103571.pth',
    '161': 'densenet161-8d451a50.pth',
}


class RunsCommand:
    """Pickles into a call of os.system, as a malicious checkpoint would."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


def randomize_batchnorm(model: nn.Module) -> nn.Module:
    """Gives every BatchNorm statistics and affine parameters far from their defaults; eval mode."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels) * 0.1)
            module.running_var.copy_(torch.rand(channels) + 0.5)
            module.num_batches_tracked.fill_(7)
            with torch.no_grad():
                module.weight.copy_(torch.rand(channels) + 0.5)
                module.bias.copy_(torch.randn(channels) * 0.1)
    return model.eval()


def published_layout(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """A torchvision state dict as its published files hold it: norm.1/conv.2 keys, no num_batches_tracked."""
    return {
        re.sub(r'(denselayer\d+\.(?:norm|conv))([12])\.', r'\1.\2.', key): tensor
        for key, tensor in state_dict.items()
        if not key.endswith('num_batches_tracked')
    }


def mmpretrain_classifier(arch: Union[str, dict], num_classes: int = 1000) -> nn.Module:
    """mmpretrain's own DenseNet classifier, as its model zoo's checkpoints were saved from; eval mode."""
    with torch.device('meta'):
        channels = DenseNet(arch).out_channels[-1]
    backbone = dict(type='DenseNet', arch=arch)
    head = dict(type='LinearClsHead', num_classes=num_classes, in_channels=channels)
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # whatever scope mmdet's or mmseg's tests left
        model = MODELS.build(
            dict(type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'), head=head)
        )
    assert type(model.backbone).__module__.startswith('mmpretrain')
    return randomize_batchnorm(model)


def table_checkpoint_urls() -> dict[str, str]:
    """The weights of configs/densenet{arch}_4xb256_in1k.py (mmpretrain's), as configs/metafile.yml lists them."""
    models = yaml.safe_load((REPO / 'configs' / 'metafile.yml').read_text())['Models']
    weights = {model['Config']: model['Weights'] for model in models}
    return {arch: weights[f'configs/densenet{arch}_4xb256_in1k.py'] for arch in TORCHVISION_FILES}


def use_download_cache(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Points TORCH_HOME into ``folder``; returns the folder where mmengine's http loader then caches downloads."""
    monkeypatch.setenv('TORCH_HOME', str(folder / 'torch'))
    cache = folder / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    return cache


def build_config_classifier(arch: str) -> nn.Module:
    """The model of configs/densenet{arch}_4xb256_in1k.py, in eval mode."""
    cfg = Config.fromfile(REPO / 'configs' / f'densenet{arch}_4xb256_in1k.py')
    return MODELS.build(cfg.model).eval()


def logits(model: nn.Module, images: Tensor) -> Tensor:
    """Class scores before softmax of a torchvision DenseNet or an mmpretrain classifier."""
    with torch.no_grad():
        if hasattr(model, 'extract_feat'):
            return model(images, mode='tensor')
        return model(images)


def assert_same_logits(ours: Tensor, theirs: Tensor) -> None:
    """Equal to 1e-5 relative to the largest logit (or feature), and not trivially so."""
    assert theirs.std() > 0 and theirs.isfinite().all()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())
