"""mmdensenet.analysis.complexity: the table's counting rules, checked by hand on small models."""

import pytest
import torch
import torch.nn as nn
from mmengine.analysis import get_model_complexity_info
from mmpretrain.registry import MODELS

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from mmdensenet.analysis.complexity import (
    Complexity,
    analyze_complexity,
    count_table_flops,
    published_transition_order,
)

TINY_ARCH = dict(growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)


def tiny_classifier(backbone_type: str = 'mmdensenet.DenseNet', **backbone) -> nn.Module:
    """Ours by default; ``'DenseNet'`` is mmpretrain's, whose transitions convolve, then pool."""
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type=backbone_type, arch=TINY_ARCH, **backbone),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=51),
        )
    )


def test_each_rule_on_a_small_network() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 1, groups=2, bias=False),
        nn.BatchNorm2d(4, affine=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    ).eval()
    expected = (
        4 * 8 * 8 * (3 * 3 * 3)
        + 4 * 8 * 8  # conv: 27 multiply-adds per output element, plus its bias
        + 2 * 4 * 8 * 8  # affine BN: 2 per input element
        + 4 * 8 * 8  # ReLU: 1 per output element
        + 4 * 8 * 8  # max-pool: 1 per input element
        + 4 * 4 * 4 * 2  # grouped 1x1 conv: 2 input channels per group
        + 4 * 4 * 4  # BN without affine: 1 per input element
        + 4 * 4 * 4  # global average pooling: 1 per input element
        + 4 * 2
        + 2  # linear: 4 multiply-adds per output, plus its bias
    )
    assert count_table_flops(model, torch.randn(1, 3, 8, 8)) == expected


def test_norms_and_activations_beyond_batchnorm() -> None:
    x = torch.randn(1, 4, 5, 5)
    assert count_table_flops(nn.GroupNorm(2, 4), x) == 2 * x.numel()
    assert count_table_flops(nn.LayerNorm(5, elementwise_affine=False), x) == x.numel()
    assert count_table_flops(nn.InstanceNorm2d(4, affine=True), x) == 2 * x.numel()
    for activation in (nn.ReLU6(), nn.GELU(), nn.SiLU(), nn.PReLU(), nn.Hardswish()):
        assert count_table_flops(activation, x) == x.numel()
    assert count_table_flops(nn.AvgPool2d(2), x) == x.numel()
    assert count_table_flops(nn.Identity(), x) == 0


def test_transposed_convolution_counts_per_input_element() -> None:
    deconv = nn.ConvTranspose2d(4, 6, 2, stride=2, bias=False)
    x = torch.randn(1, 4, 3, 3)
    assert count_table_flops(deconv, x) == x.numel() * 6 * 2 * 2


def test_densenet_is_counted_whichever_path_its_blocks_take() -> None:
    """The count follows the operations that run, not module calls, so a block's fast path changes nothing.

    It is checked against conv multiply-adds + 3 per BN input element (the BN and its ReLU) + pooling
    inputs, measured with forward hooks on the modules while gradients make every module run.
    """
    x = torch.randn(1, 3, 64, 64)
    model = tiny_classifier().eval()
    flops = count_table_flops(model.extract_feat, x)  # without gradients, as inference runs
    conv, bn, pool = 0, 0, 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal conv, bn, pool
        if isinstance(module, nn.Conv2d):
            conv += output.numel() * module.weight[0].numel()
        elif isinstance(module, nn.BatchNorm2d):
            bn += inputs[0].numel()
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            pool += inputs[0].numel()

    for module in model.modules():
        module.register_forward_hook(hook)
    with torch.enable_grad():  # modules' own forward path
        model.extract_feat(x.requires_grad_())
    assert conv and bn and pool
    assert flops == conv + 3 * bn + pool


def test_analyze_complexity_matches_mmengine_and_restores_training_mode() -> None:
    model = tiny_classifier()
    model.train()
    complexity = analyze_complexity(model, (3, 64, 64))
    assert model.training
    assert complexity.params == sum(p.numel() for p in model.parameters())
    model.eval()
    model.forward = model.extract_feat  # what mmpretrain's get_flops does
    expected = get_model_complexity_info(model, (3, 64, 64), show_table=False, show_arch=False)
    assert complexity.mmengine_flops == expected['flops']


def test_published_order_counts_what_mmpretrains_densenet_counts() -> None:
    """Our net run in the published order: mmpretrain's count in both conventions, the same outputs."""
    model = tiny_classifier().eval()
    published = analyze_complexity(model, (3, 64, 64), published_order=True)
    assert published == analyze_complexity(tiny_classifier('DenseNet'), (3, 64, 64))
    ours = analyze_complexity(model, (3, 64, 64))
    assert ours.params == published.params
    assert ours.flops < published.flops and ours.mmengine_flops < published.mmengine_flops
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.extract_feat(x)
        with published_transition_order(model):
            reordered = model.extract_feat(x)
    torch.testing.assert_close(reordered, expected)
    transition = model.backbone.transitions[0]  # restored
    assert isinstance(transition.conv, nn.Conv2d) and isinstance(transition.pool, nn.AvgPool2d)


@pytest.mark.parametrize(
    'arch, channels, flops',
    [
        ('121', 1024, 2_881_695_488),
        ('169', 1664, 3_416_860_160),
        ('201', 1920, 4_365_236_736),
        ('161', 2208, 7_816_363_968),
    ],
)
def test_the_convention_reproduces_the_table_on_mmpretrains_densenet(arch: str, channels: int, flops: int) -> None:
    """mmpretrain's own DenseNet (whose transitions run conv, then pool) gives the table's FLOPs to the digit."""
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='DenseNet', arch=arch),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=1000, in_channels=channels),
        )
    ).eval()
    if arch == '121':
        assert analyze_complexity(model) == Complexity(7_978_856, flops, 2_864_522_752)
    else:
        assert count_table_flops(model.extract_feat, torch.randn(1, 3, 224, 224)) == flops


@pytest.mark.parametrize(
    'complexity, text',
    [
        (Complexity(7_978_856, 2_881_695_488, 0), '7.98M / 2.88G'),
        (Complexity(28_681_000, 7_816_363_968, 0), '28.68M / 7.82G'),
    ],
)
def test_table_style(complexity: Complexity, text: str) -> None:
    assert complexity.table_style() == text
