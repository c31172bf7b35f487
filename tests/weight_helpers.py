"""Helpers shared by the tests of weights in and out (tests/test_weights, the converter's tests)."""

import os
from pathlib import Path

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]


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
    """Equal to 1e-5 relative to the largest logit, and not trivially so."""
    assert theirs.std() > 0 and theirs.isfinite().all()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())
