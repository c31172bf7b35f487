import copy

import numpy as np
import pytest
import torch
from mmengine.registry import MODELS as ROOT_MODELS
from mmpretrain.models.backbones import DenseNet as MMPretrainDenseNet
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from mmdensenet.models import DenseNet
from mmdensenet.models.backbones.densenet import BlockStrategy
from mmdensenet.registry import MODELS
from tests.test_models.test_backbones.precision_checks import assert_bitwise_equal, assert_within_plain_rounding, twins
from tests.test_models.test_backbones.precision_checks import train_step as weighted_train_step

TINY = dict(growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)  # taps: 24, 28, 38, 51 channels


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classifier_params(backbone: DenseNet, num_classes: int) -> int:
    """Backbone parameters plus those of a linear head on the last tap."""
    return num_params(backbone) + (backbone.feature_info[-1]['num_chs'] + 1) * num_classes


@pytest.mark.parametrize(
    'arch, expected',
    [('121', 7_978_856), ('169', 14_149_480), ('201', 20_013_928), ('161', 28_681_000)],
)
def test_imagenet_parameter_counts_match_the_table(arch: str, expected: int) -> None:
    assert classifier_params(DenseNet(arch), 1000) == expected


@pytest.mark.parametrize(
    'arch, millions',
    [
        ('bc-l100-k12', 0.8),
        ('bc-l250-k24', 15.3),
        ('bc-l190-k40', 25.6),
        ('l40-k12', 1.0),
        ('l100-k12', 7.0),
        ('l100-k24', 27.2),
    ],
)
def test_cifar_parameter_counts_match_the_paper(arch: str, millions: float) -> None:
    assert round(classifier_params(DenseNet(arch), 10) / 1e6, 1) == millions


def test_int_arch_names_the_same_net_as_its_string() -> None:
    assert DenseNet(169).state_dict().keys() == DenseNet('169').state_dict().keys()
    assert DenseNet(169).out_channels == DenseNet('169').out_channels


def test_densenet264_follows_the_paper() -> None:
    model = DenseNet('264')
    assert model.growth_rate == 32
    assert [len(stage.block) for stage in model.stages] == [6, 12, 64, 48]


@pytest.mark.parametrize(
    'arch, channels',
    [
        ('121', (256, 512, 1024, 1024)),
        ('169', (256, 512, 1280, 1664)),
        ('201', (256, 512, 1792, 1920)),
        ('161', (384, 768, 2112, 2208)),
    ],
)
def test_taps_are_normalised_blocks_at_strides_4_to_32(arch: str, channels: tuple) -> None:
    model = DenseNet(arch, out_indices=(0, 1, 2, 3)).eval()
    assert model.out_channels == channels
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape for o in outs] == [(1, c, 64 // s, 64 // s) for c, s in zip(channels, (4, 8, 16, 32))]
    # Each tap is the output of a ReLU: non-negative.
    assert all(o.min() >= 0 for o in outs)


def test_last_tap_is_relu_of_the_final_norm() -> None:
    model = DenseNet(TINY, out_indices=(2, 3)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.stem(x)
        for stage, transition in zip(model.stages[:3], model.transitions[:3]):
            _, feats = transition(stage(feats))
        expected = torch.relu(model.transitions[3][0](model.stages[3](feats)))
        outs = model(x)
    assert model.out_channels == (38, 51)
    torch.testing.assert_close(outs[1], expected)


@pytest.mark.parametrize(
    'arch, size, expected',
    [
        (
            '121',
            64,
            [
                (256, 4, 'transitions.0.act'),
                (512, 8, 'transitions.1.act'),
                (1024, 16, 'transitions.2.act'),
                (1024, 32, 'transitions.3.1'),
            ],
        ),
        (
            'bc-l100-k12',
            32,
            [(216, 1, 'transitions.0.act'), (300, 2, 'transitions.1.act'), (342, 4, 'transitions.2.1')],
        ),
    ],
)
def test_feature_info_describes_each_tap_and_the_module_that_outputs_it(arch: str, size: int, expected: list) -> None:
    model = DenseNet(arch, out_indices=tuple(range(len(expected)))).eval()
    assert model.feature_info == [dict(num_chs=c, reduction=r, module=m) for c, r, m in expected]
    hooked = []
    for info in model.feature_info:
        model.get_submodule(info['module']).register_forward_hook(lambda module, args, out: hooked.append(out))
    with torch.no_grad():
        outs = model(torch.randn(1, 3, size, size))
    assert len(hooked) == len(outs) and all(a is b for a, b in zip(hooked, outs))
    assert [o.shape[1:] for o in outs] == [(c, size // r, size // r) for c, r, _ in expected]


def test_out_channels_derive_from_feature_info() -> None:
    model = DenseNet('bc-l100-k12', out_indices=(0, 2))
    assert [(info['num_chs'], info['reduction']) for info in model.feature_info] == [(216, 1), (300, 2), (342, 4)]
    assert model.out_channels == (216, 342)


def test_transition_pools_first_and_agrees_with_its_declared_order() -> None:
    """Keyed norm, act, conv, pool, as published; pooling first commutes with the 1x1 conv."""
    transition = DenseNet(TINY).transitions[0]
    assert [name for name, _ in transition.named_children()] == ['norm', 'act', 'conv', 'pool']
    x = torch.randn(2, 24, 16, 16)
    with torch.no_grad():
        tap, downsampled = transition(x)
        declared = nn.Sequential(*transition.children())(x)
        expected_tap = transition.act(transition.norm(x))
    assert torch.equal(tap, expected_tap)
    assert downsampled.shape == declared.shape == (2, 12, 8, 8)
    torch.testing.assert_close(downsampled, declared)


SMALL = dict(growth_rate=4, depths=(1, 2), init_channels=8)
CONCATENATE, CHECKPOINT, SHARED_BUFFER = (
    BlockStrategy.CONCATENATE,
    BlockStrategy.CHECKPOINT,
    BlockStrategy.SHARED_BUFFER,
)


@pytest.mark.parametrize(
    'kwargs, training, grad, expected',
    [
        (dict(), True, True, [CONCATENATE] * 2),
        (dict(memory_efficient=True), True, True, [SHARED_BUFFER] * 2),
        (dict(memory_efficient=True), False, True, [SHARED_BUFFER] * 2),  # gradients, not the mode, decide
        (dict(memory_efficient=True, norm_cfg=dict(type='GN', num_groups=1)), True, True, [CHECKPOINT] * 2),
        (dict(memory_efficient=True, act_cfg=dict(type='LeakyReLU')), True, True, [CHECKPOINT] * 2),
        (dict(memory_efficient=True, drop_rate=0.1), True, True, [CHECKPOINT] * 2),
        (dict(), False, False, [CONCATENATE] * 2),  # the plain mode, on public operations only
        (dict(memory_efficient=True), True, False, [SHARED_BUFFER] * 2),
        (dict(memory_efficient=True, norm_cfg=dict(type='GN', num_groups=1)), False, False, [CONCATENATE] * 2),
        (dict(norm_cfg=dict(type='SyncBN')), False, False, [CONCATENATE] * 2),  # a subclass of BatchNorm2d
        (dict(frozen_stages=1), True, True, [CONCATENATE] * 2),
        (dict(memory_efficient=True, frozen_stages=1), True, True, [SHARED_BUFFER] * 2),
    ],
)
def test_strategy_in_eager_mode_on_cpu(
    strategies: list, kwargs: dict, training: bool, grad: bool, expected: list
) -> None:
    model = DenseNet(SMALL, **kwargs).train(training)
    with torch.set_grad_enabled(grad):
        model(torch.randn(2, 3, 32, 32))
    assert strategies == expected


@pytest.mark.filterwarnings('ignore::FutureWarning', 'ignore::torch.jit.TracerWarning')
@pytest.mark.parametrize(
    'memory_efficient, grad, expected',
    [(False, True, CONCATENATE), (True, True, CHECKPOINT), (True, False, CONCATENATE)],
)
def test_traced_and_compiled_graphs_never_take_the_shared_buffer(
    strategies: list, memory_efficient: bool, grad: bool, expected: BlockStrategy
) -> None:
    model = DenseNet(SMALL, memory_efficient=memory_efficient).train()
    x = torch.randn(2, 3, 32, 32)
    with torch.set_grad_enabled(grad):
        torch.jit.trace(model, x, check_trace=False)
        assert strategies == [expected] * 2
        strategies.clear()
        torch.compile(model, backend='eager')(x)
    assert strategies == [expected] * 2


# Taps at strides 4 to 32 on 32x32 inputs, and a CIFAR-stem net of layers without bottleneck at strides 1 to 4 on 8x8.
GRAPH_ARCHS = [
    (dict(growth_rate=4, depths=(1, 2, 1, 1), init_channels=8), 32),
    (dict(growth_rate=4, depths=(2, 1, 1), init_channels=8, bn_size=0, compression=1.0, stem='cifar'), 8),
]


def all_taps(arch: dict, **kwargs) -> DenseNet:
    return DenseNet(arch, out_indices=tuple(range(len(arch['depths']))), **kwargs)


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('memory_efficient', [False, True])
@pytest.mark.parametrize('arch, size', GRAPH_ARCHS)
def test_fx_graph_concatenates_and_equals_eager(
    strategies: list, arch: dict, size: int, memory_efficient: bool, training: bool
) -> None:
    model = all_taps(arch, memory_efficient=memory_efficient).train(training)
    graph = torch.fx.symbolic_trace(copy.deepcopy(model))
    assert strategies == [CONCATENATE] * len(arch['depths'])
    x = torch.randn(4, 3, size, size)
    assert_bitwise_equal(weighted_train_step(model, x), weighted_train_step(graph.train(training), x))


@pytest.mark.parametrize('training', [False, True])
@pytest.mark.parametrize('memory_efficient', [False, True])
@pytest.mark.parametrize('arch, size', GRAPH_ARCHS)
def test_feature_extractor_on_feature_info_modules_equals_eager(
    arch: dict, size: int, memory_efficient: bool, training: bool
) -> None:
    """torchvision's create_feature_extractor (timm's FX route to features) takes feature_info's module names."""
    model = all_taps(arch, memory_efficient=memory_efficient)
    names = [info['module'] for info in model.feature_info]
    extractor = create_feature_extractor(copy.deepcopy(model), names)
    x = torch.randn(4, 3, size, size)
    extractor.train(training)
    assert_bitwise_equal(weighted_train_step(model.train(training), x), weighted_train_step(extractor, x))
    assert list(extractor(x)) == names


@pytest.mark.filterwarnings('ignore::FutureWarning', 'ignore::torch.jit.TracerWarning')
@pytest.mark.parametrize('memory_efficient', [False, True])
def test_exported_and_traced_models_equal_eager(memory_efficient: bool) -> None:
    """The export routes docs/export.md names, but ONNX (tests/test_tools/test_export_onnx.py)."""
    arch, size = GRAPH_ARCHS[0]
    model = all_taps(arch, memory_efficient=memory_efficient).eval()
    example, x = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = model(x)
        exported = torch.export.export(model, (example,)).module()
        traced = torch.jit.trace(model, example)
        torch.testing.assert_close(exported(x), expected)
        torch.testing.assert_close(traced(x), expected)


def test_subset_and_negative_out_indices() -> None:
    model = DenseNet(TINY, out_indices=(-1, 1)).eval()
    assert model.out_indices == (1, 3)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [28, 51]


def test_cifar_stem_keeps_resolution_and_has_three_blocks() -> None:
    model = DenseNet('bc-l100-k12', out_indices=(0, 1, 2)).eval()
    outs = model(torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [(216, 32, 32), (300, 16, 16), (342, 8, 8)]


def test_plain_cifar_layers_have_no_bottleneck() -> None:
    layer = DenseNet('l40-k12').stages[0].block[0]
    assert layer.conv1.kernel_size == (3, 3)
    assert not layer.bottleneck and len(layer.steps) == 1
    assert not hasattr(layer, 'conv2')


def test_registered_under_its_scope_and_not_confused_with_mmpretrain() -> None:
    cfg = dict(type='mmdensenet.DenseNet', arch=TINY)
    for registry in (MODELS, ROOT_MODELS, MMPRETRAIN_MODELS):
        assert type(registry.build(copy.deepcopy(cfg))) is DenseNet
    assert type(MMPRETRAIN_MODELS.build(dict(type='DenseNet'))) is MMPretrainDenseNet


def test_state_dict_uses_mmpretrain_key_layout() -> None:
    ours = DenseNet('121').state_dict()
    theirs = MMPretrainDenseNet('121').state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_default_initialisation_follows_torchvision() -> None:
    model = DenseNet('121')
    model.init_weights()
    conv = model.stages[3].block[0].conv1  # 1x1 conv, fan_in 512
    assert conv.weight.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.05)
    norm = model.transitions[3][0]
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


@pytest.mark.parametrize('frozen_stages', [0, 2, 4])
def test_frozen_stages_have_no_grad_and_stay_in_eval(frozen_stages: int) -> None:
    model = DenseNet(TINY, frozen_stages=frozen_stages, out_indices=(0, 1, 2, 3))
    assert model.train() is model
    frozen = [model.stem] + [m for i in range(frozen_stages) for m in (model.stages[i], model.transitions[i])]
    free = [m for i in range(frozen_stages, 4) for m in (model.stages[i], model.transitions[i])]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in free:
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    outs = model(torch.randn(2, 3, 64, 64))
    if not free:
        assert not any(o.requires_grad for o in outs)
        return
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert all(p.grad is not None for m in free for p in m.parameters())


def test_nothing_frozen_by_default() -> None:
    model = DenseNet(TINY).train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


def test_norm_eval_keeps_every_norm_layer_in_eval_mode() -> None:
    model = DenseNet(TINY, norm_eval=True)
    assert model.train() is model
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.training for m in norms)
    assert model.stages[0].block[0].conv1.training
    before = copy.deepcopy(model.state_dict())
    model(torch.randn(2, 3, 64, 64))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert model.eval() is model


def train_step(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out)
    loss.backward()
    return out


@pytest.mark.parametrize(
    'arch, norm_cfg',
    [
        (TINY, dict(type='BN')),
        ('bc-l100-k12', dict(type='BN')),
        ('l40-k12', dict(type='BN')),
        (TINY, dict(type='GN', num_groups=1)),
    ],
)
def test_memory_efficient_is_exact(arch, norm_cfg: dict) -> None:
    size = 32 if isinstance(arch, str) else 64
    plain = DenseNet(arch, norm_cfg=norm_cfg, out_indices=(0, 1, 2))
    efficient = DenseNet(arch, norm_cfg=norm_cfg, out_indices=(0, 1, 2), memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, size, size)
    outs_plain = train_step(plain.train(), x)
    outs_efficient = train_step(efficient.train(), x)
    for a, b in zip(outs_plain, outs_efficient):
        torch.testing.assert_close(a, b)
    grads = {n: p.grad for n, p in efficient.named_parameters()}
    for name, param in plain.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, msg=name)
    buffers = dict(efficient.named_buffers())
    for name, buffer in plain.named_buffers():
        torch.testing.assert_close(buffers[name], buffer, msg=name)
        if name.endswith('num_batches_tracked'):
            assert buffer.item() == 1


def test_memory_efficient_with_norm_eval_keeps_running_statistics() -> None:
    model = DenseNet(TINY, memory_efficient=True, norm_eval=True).train()
    before = copy.deepcopy(model.state_dict())
    train_step(model, torch.randn(2, 3, 64, 64))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_dropout_only_while_training() -> None:
    model = DenseNet(TINY, drop_rate=0.5)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])


def test_in_channels() -> None:
    model = DenseNet(TINY, in_channels=1).eval()
    assert model(torch.randn(1, 1, 64, 64))[0].shape == (1, 51, 2, 2)


def test_channels_last_inputs_give_the_same_outputs() -> None:
    model = DenseNet(TINY, out_indices=(0, 1, 2, 3)).eval()
    x = torch.randn(2, 3, 64, 64)
    reference = model(x)
    model = model.to(memory_format=torch.channels_last)
    outs = model(x.to(memory_format=torch.channels_last))
    for a, b in zip(reference, outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert outs[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('memory_efficient', [False, True])
def test_torch_compile_matches_eager(memory_efficient: bool) -> None:
    model = DenseNet(dict(growth_rate=4, depths=(1, 2, 1, 1), init_channels=8), memory_efficient=memory_efficient)
    x = torch.randn(2, 3, 32, 32)
    twin = copy.deepcopy(model)
    compiled = torch.compile(twin)
    torch.testing.assert_close(compiled.eval()(x), model.eval()(x), rtol=1e-4, atol=1e-5)
    out_compiled = train_step(compiled.train(), x)
    out_eager = train_step(model.train(), x)
    torch.testing.assert_close(out_compiled, out_eager, rtol=1e-4, atol=1e-5)
    grads = dict(twin.named_parameters())
    for name, param in model.named_parameters():
        torch.testing.assert_close(grads[name].grad, param.grad, rtol=1e-3, atol=1e-5)
    buffers = dict(twin.named_buffers())
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffers[name], buffer, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(arch='122'), 'arch must be one of'),
        (dict(arch=122), 'arch must be one of'),
        (dict(arch=True), 'arch must be a string, an int or a dict'),
        (dict(arch=dict(growth_rate=32, depths=(6, 12))), 'arch dict needs the keys'),
        (dict(arch=dict(TINY, stem='huge')), "arch\\['stem'\\]"),
        (dict(arch=dict(TINY, widths=3)), 'arch dict needs the keys'),
        (dict(out_indices=(4,)), 'out_indices must be integers in \\[-4, 3\\]'),
        (dict(out_indices=(1, 1)), 'out_indices must not repeat'),
        (dict(out_indices=(-1, 3)), 'out_indices must not repeat'),
        (dict(out_indices=()), 'out_indices must be'),
        (dict(frozen_stages=5), 'frozen_stages must be an integer from -1 to 4'),
        (dict(frozen_stages=-2), 'frozen_stages'),
        (dict(drop_rate=1.0), 'drop_rate'),
        (dict(memory_efficient=True, norm_cfg=dict(type='SyncBN')), 'memory_efficient=True needs'),
        (dict(out_indices=1.5), 'out_indices must be'),
        (dict(out_indices=True), 'out_indices must be'),
        (dict(frozen_stages=True), 'frozen_stages'),
        (dict(drop_rate='0.1'), 'drop_rate must be a number in \\[0, 1\\)'),
        (dict(drop_rate=float('nan')), 'drop_rate must be a number'),
        (dict(norm_eval='yes'), 'norm_eval must be True or False'),
        (dict(memory_efficient=1), 'memory_efficient must be True or False'),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    kwargs.setdefault('arch', TINY)
    with pytest.raises(ValueError, match=message):
        DenseNet(**kwargs)


@pytest.mark.parametrize(
    'field, value, allowed',
    [
        *[('growth_rate', value, 'a positive int') for value in (0, -12, '12', 12.5, True, None)],
        *[
            ('depths', value, 'a non-empty sequence of positive ints \\(the layers of each dense block\\)')
            for value in ((0, 0, 0), (3, -1, 3), 3, (), '333', (3, 2.0, 3), (3, True), None)
        ],
        *[('init_channels', value, 'a positive int') for value in (0, -16, 16.0)],
        *[('bn_size', value, 'a non-negative int \\(0 for no bottleneck\\)') for value in (-1, 1.5, '4', False)],
        *[('compression', value, 'a number in \\(0, 1\\]') for value in (0, 1.5, -0.5, float('nan'), '0.5', True)],
        *[('stem', value, "'imagenet' or 'cifar'") for value in ('huge', 'CIFAR', None, ['cifar'])],
    ],
)
def test_every_arch_field_is_checked_naming_the_field_and_its_allowed_values(
    field: str, value: object, allowed: str
) -> None:
    with pytest.raises(ValueError, match=f"^arch\\['{field}'\\] must be {allowed}, got "):
        DenseNet(dict(TINY, **{field: value}))


def test_arch_field_error_in_full() -> None:
    with pytest.raises(ValueError) as error:
        DenseNet(dict(TINY, growth_rate='12'))
    assert str(error.value) == "arch['growth_rate'] must be a positive int, got '12'"


def test_compression_must_keep_a_channel() -> None:
    # The first dense block gives 16 + 8 channels; 0.04 of them rounds down to none.
    with pytest.raises(ValueError, match=r"arch\['compression'\] must keep one of the 24 channels of dense block 0"):
        DenseNet(dict(TINY, compression=0.04))
    assert DenseNet(dict(TINY, compression=0.12)).transitions[0].conv.out_channels == 2


@pytest.mark.parametrize('in_channels', [0, -3, 3.0, True, '3'])
def test_in_channels_must_be_a_positive_int(in_channels: object) -> None:
    with pytest.raises(ValueError, match='in_channels must be a positive int'):
        DenseNet(TINY, in_channels=in_channels)


def test_edge_values_of_arch_fields_build() -> None:
    """No bottleneck, no compression, one block, one layer, numpy ints and a list of depths are all valid."""
    model = DenseNet(dict(growth_rate=np.int64(4), depths=[1], init_channels=2, bn_size=0, compression=1)).eval()
    assert not model.stages[0].block[0].bottleneck
    assert model.out_channels == (6,)
    assert model(torch.randn(1, 3, 16, 16))[0].shape == (1, 6, 4, 4)
    model = DenseNet(dict(TINY, depths=tuple(np.array([1, 1])), compression=1.0), out_indices=np.int64(0))
    assert [info['num_chs'] for info in model.feature_info] == [24, 32] and model.out_indices == (0,)


def test_cifar_arch_rejects_a_fourth_out_index() -> None:
    with pytest.raises(ValueError, match='out_indices must be integers in \\[-3, 2\\]'):
        DenseNet('l40-k12', out_indices=(3,))


def exactness_check(plain: DenseNet, efficient: DenseNet, x: torch.Tensor) -> None:
    """One train step of each: outputs, gradients and buffers agree."""
    efficient.load_state_dict(plain.state_dict())
    outs_plain = train_step(plain, x)
    outs_efficient = train_step(efficient, x)
    for a, b in zip(outs_plain, outs_efficient):
        torch.testing.assert_close(a, b)
    grads = {n: p.grad for n, p in efficient.named_parameters()}
    for name, param in plain.named_parameters():
        if param.grad is None:
            assert grads[name] is None, name
        else:
            torch.testing.assert_close(grads[name], param.grad, msg=name)
    buffers = dict(efficient.named_buffers())
    for name, buffer in plain.named_buffers():
        torch.testing.assert_close(buffers[name], buffer, msg=name)


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(norm_cfg=dict(type='BN', momentum=None)),  # cumulative moving average
        dict(norm_eval=True),
        dict(frozen_stages=1),
        dict(frozen_stages=0, out_indices=(1, 3)),
    ],
)
def test_memory_efficient_is_exact_with_frozen_or_eval_norms(kwargs: dict) -> None:
    plain = DenseNet(TINY, **kwargs).train()
    efficient = DenseNet(TINY, memory_efficient=True, **kwargs).train()
    exactness_check(plain, efficient, torch.randn(4, 3, 64, 64))


def test_memory_efficient_is_exact_in_channels_last() -> None:
    plain = DenseNet(TINY, out_indices=(0, 1, 2, 3)).train()
    efficient = DenseNet(TINY, out_indices=(0, 1, 2, 3), memory_efficient=True)
    efficient = efficient.to(memory_format=torch.channels_last).train()
    exactness_check(plain, efficient, torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last))


@pytest.mark.parametrize('amp', [False, True])
@pytest.mark.parametrize('memory_efficient', [False, True])
def test_inference_without_autograd_matches_the_autograd_path(memory_efficient: bool, amp: bool) -> None:
    model = DenseNet(TINY, out_indices=(0, 1, 2, 3), memory_efficient=memory_efficient).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        with torch.no_grad():
            buffered = model(x)
        tracked = model(x)  # parameters need gradients: the plain mode concatenates
    for a, b in zip(buffered, tracked):
        torch.testing.assert_close(a, b)


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, amp: bool = False) -> int:
    """Bytes of the distinct tensors autograd keeps for backward, parameters excluded (also their autocast copies)."""
    params = {p.data_ptr() for p in model.parameters()}
    storages = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), torch.autocast('cpu', enabled=amp):
        outs = model(x)
    sum(o.sum() for o in outs).backward()
    return sum(storages.values())


@pytest.mark.parametrize('amp', [False, True])
def test_memory_efficient_keeps_less_than_half_the_activations(amp: bool) -> None:
    arch = dict(growth_rate=8, depths=(4, 8, 8, 4), init_channels=16)
    x = torch.randn(2, 3, 64, 64)
    plain = saved_activation_bytes(DenseNet(arch).train(), x, amp)
    efficient = saved_activation_bytes(DenseNet(arch, memory_efficient=True).train(), x, amp)
    assert efficient < 0.5 * plain


@pytest.mark.parametrize('memory_efficient', [False, True])
def test_dynamo_captures_the_backbone_without_graph_breaks(memory_efficient: bool) -> None:
    model = DenseNet(dict(growth_rate=4, depths=(1, 2, 1, 1), init_channels=8), memory_efficient=memory_efficient)
    explanation = torch._dynamo.explain(model.train())(torch.randn(2, 3, 32, 32))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@pytest.mark.parametrize(
    'kwargs, memory_format',
    [
        (dict(), torch.contiguous_format),
        (dict(), torch.channels_last),
        (dict(frozen_stages=1), torch.contiguous_format),
        (dict(norm_eval=True), torch.contiguous_format),
    ],
)
def test_memory_efficient_equals_plain_under_bfloat16_autocast(kwargs: dict, memory_format) -> None:
    """On CPU the two modes run the same kernels in the same order: bitwise equal, so equally far from float64."""
    arch = dict(growth_rate=8, depths=(2, 2, 2), init_channels=16)
    plain, efficient, reference = twins(arch, memory_format, **kwargs)
    x = torch.randn(16, 3, 32, 32).contiguous(memory_format=memory_format)
    results = [weighted_train_step(m, x, torch.bfloat16) for m in (plain, efficient)]
    assert all(o.dtype == torch.bfloat16 for o in results[1].outputs)
    assert_bitwise_equal(*results)
    assert_within_plain_rounding(*results, weighted_train_step(reference, x.double()))
