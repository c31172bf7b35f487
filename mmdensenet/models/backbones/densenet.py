"""DenseNet backbone (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

Module names follow mmpretrain's DenseNet, so the checkpoints of its model zoo load as
they are: ``stem``, ``stages.i.block.j.{norm1,conv1,norm2,conv2}``, ``transitions.i``.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from enum import Enum
from numbers import Integral, Real
from typing import Any, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmdensenet.registry import MODELS

from ._shared_buffer import NormActConv, shared_buffer_block, shared_buffer_serves

ArchSetting = dict[str, Union[int, float, str, Sequence[int]]]


def _imagenet_arch(growth_rate: int, depths: Sequence[int], init_channels: int) -> ArchSetting:
    return dict(growth_rate=growth_rate, depths=tuple(depths), init_channels=init_channels)


def _cifar_arch(depth: int, growth_rate: int, bc: bool) -> ArchSetting:
    """The paper's three-block CIFAR/SVHN nets; ``depth`` is the paper's L."""
    layers_per_conv = 2 if bc else 1
    num_layers = (depth - 4) // (3 * layers_per_conv)
    return dict(
        growth_rate=growth_rate,
        depths=(num_layers,) * 3,
        init_channels=2 * growth_rate if bc else 16,
        bn_size=4 if bc else 0,
        compression=0.5 if bc else 1.0,
        stem='cifar',
    )


# Where a config written for mmpretrain's DenseNet learns what to change.
FROM_MMPRETRAIN = 'see the README\'s section "Coming from mmpretrain\'s DenseNet"'
# mmpretrain's DenseNet takes these as arguments; ours takes them as these keys of ``arch``.
MMPRETRAIN_ARGUMENTS = {'bn_size': 'bn_size', 'compression_factor': 'compression'}


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_depths(value: Any) -> bool:
    return (
        isinstance(value, Sequence) and not isinstance(value, str) and bool(value) and all(map(_is_positive_int, value))
    )


# What each field of an arch dict may be: its allowed values in words, and the check.
ARCH_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    'growth_rate': ('a positive int', _is_positive_int),
    'depths': ('a non-empty sequence of positive ints (the layers of each dense block)', _is_depths),
    'init_channels': ('a positive int', _is_positive_int),
    'bn_size': ('a non-negative int (0 for no bottleneck)', lambda value: _is_int(value) and value >= 0),
    'compression': ('a number in (0, 1]', lambda value: _is_number(value) and 0 < value <= 1),
    'stem': ("'imagenet' or 'cifar'", lambda value: isinstance(value, str) and value in ('imagenet', 'cifar')),
}

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
# Norm layers whose recomputation in backward can be made exact (see _DenseLayer).
EXACT_RECOMPUTE_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
RUNNING_STATS = ('running_mean', 'running_var', 'num_batches_tracked')


class _DenseLayer(nn.Module):
    """BN-act-conv1x1-BN-act-conv3x3 adding ``growth_rate`` channels.

    Without a bottleneck (``bn_size=0``, the paper's plain nets) it is BN-act-conv3x3.

    Attributes:
        bottleneck: Whether the layer has the 1x1 bottleneck step (and so ``norm2`` and ``conv2``).
    """

    def __init__(
        self, in_channels: int, growth_rate: int, bn_size: int, norm_cfg: dict, act_cfg: dict, drop_rate: float
    ) -> None:
        super().__init__()
        self.bottleneck = bn_size > 0
        width = bn_size * growth_rate if self.bottleneck else growth_rate
        kernel = 1 if self.bottleneck else 3
        self.norm1 = build_norm_layer(norm_cfg, in_channels)[1]
        self.act = build_activation_layer(act_cfg)
        self.conv1 = nn.Conv2d(in_channels, width, kernel, padding=kernel // 2, bias=False)
        if self.bottleneck:
            self.norm2 = build_norm_layer(norm_cfg, width)[1]
            self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    @property
    def steps(self) -> list[NormActConv]:
        """The layer's norm-act-conv steps, in order (they share ``act``), as the shared buffer runs them.

        The layer's own forward calls the modules directly: torch 2.6's dynamo cannot call modules
        held in a NamedTuple built while it traces.
        """
        first = NormActConv(self.norm1, self.act, self.conv1)
        return [first, NormActConv(self.norm2, self.act, self.conv2)] if self.bottleneck else [first]

    def _first_step(self, *features: Tensor) -> Tensor:
        return self.conv1(self.act(self.norm1(torch.cat(features, 1))))

    def _first_step_on_batch_stats(self, *features: Tensor) -> Tensor:
        """The first step of a training BatchNorm, leaving its running statistics alone."""
        norm = self.norm1
        x = F.batch_norm(torch.cat(features, 1), None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
        return self.conv1(self.act(x))

    def _updates_running_stats(self) -> bool:
        norm = self.norm1
        return isinstance(norm, _BatchNorm) and norm.training and norm.track_running_stats

    @contextmanager
    def _scratch_running_stats(self) -> Iterator[None]:
        # The recomputation in backward sees the batch of the forward pass again, so it
        # must not update the running statistics a second time (torchvision's and
        # mmpretrain's checkpointed layers do). It updates throwaway copies instead, which
        # keeps the recomputed graph identical to the forward one, as checkpoint requires.
        norm = self.norm1
        if not self._updates_running_stats():
            yield
            return
        originals = {name: getattr(norm, name) for name in RUNNING_STATS}
        for name, buffer in originals.items():
            setattr(norm, name, buffer.clone())
        try:
            yield
        finally:
            for name, buffer in originals.items():
                setattr(norm, name, buffer)

    def _checkpoint_contexts(self) -> tuple[AbstractContextManager, AbstractContextManager]:
        return nullcontext(), self._scratch_running_stats()

    def _checkpointed_first_step(self, features: list[Tensor]) -> Tensor:
        if not torch.compiler.is_compiling():
            return cp.checkpoint(self._first_step, *features, use_reentrant=False, context_fn=self._checkpoint_contexts)
        if not self._updates_running_stats():
            return cp.checkpoint(self._first_step, *features, use_reentrant=False)
        # torch 2.6's compiled backward replays the buffer updates of a checkpointed region (a second
        # update of the running statistics). So the statistics are updated here, outside it, by the
        # module itself, and the region normalises with the batch statistics alone.
        with torch.no_grad():
            self.norm1(torch.cat(features, 1))
        return cp.checkpoint(self._first_step_on_batch_stats, *features, use_reentrant=False)

    def forward(self, features: list[Tensor], checkpoint: bool = False) -> Tensor:
        """The layer's new features from the block input and the earlier layers' outputs.

        With ``checkpoint``, the first step (with the concatenation) is recomputed in backward, not stored.
        """
        out = self._checkpointed_first_step(features) if checkpoint else self._first_step(*features)
        if self.bottleneck:
            out = self.conv2(self.act(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class BlockStrategy(Enum):
    """How a dense block runs; :meth:`_DenseBlock.strategy` chooses."""

    CONCATENATE = 'concatenate'  # each layer concatenates the earlier features, as torchvision's
    CHECKPOINT = 'checkpoint'  # the same, each layer's first step recomputed in backward
    SHARED_BUFFER = 'shared buffer'  # one buffer for all features (see _shared_buffer)


class _DenseBlock(nn.Module):
    """Layers that each see the concatenation of the block input and all earlier outputs.

    Args:
        num_layers: Number of dense layers.
        in_channels: Channels of the block input.
        growth_rate: Channels each layer adds.
        memory_efficient: Recompute in backward instead of storing (see :meth:`strategy`).
        **layer_kwargs: The rest of :class:`_DenseLayer`'s arguments.
    """

    def __init__(
        self, num_layers: int, in_channels: int, growth_rate: int, memory_efficient: bool, **layer_kwargs
    ) -> None:
        super().__init__()
        self.growth_rate = growth_rate
        self.memory_efficient = memory_efficient
        self.block = nn.ModuleList(
            _DenseLayer(in_channels + i * growth_rate, growth_rate, **layer_kwargs) for i in range(num_layers)
        )

    def strategy(self, x: Tensor) -> BlockStrategy:
        """How the block runs on ``x``, here and now.

        - The shared buffer can serve in eager mode (torch.compile and tracing capture the modules'
          own operations) the layers that :func:`shared_buffer_serves` names, in fp32 and under autocast.
        - Where gradients are needed, the memory-efficient mode recomputes instead of storing: in the
          shared buffer where it can serve (its own backward recomputes BN-ReLU, no convolution), else
          by checkpointing each layer's concatenation-norm-act-conv. The plain mode concatenates.
        - Without gradients the shared buffer serves on CPU in the memory-efficient mode, which saves the
          concatenations' copies; the plain mode concatenates, as torchvision does, on public operations
          only (the buffer calls ATen's private ``_batch_norm_impl_index``, for a measured 1 to 5% there).
          CUDA inference concatenates: small batches there are bound by the host's per-operation cost,
          and the concatenating layer issues the fewest operations (measured on an H100: the buffer
          took 1.6x torchvision's time at batch 64).
        - FX (``torch.fx.symbolic_trace``, torchvision's ``create_feature_extractor``) concatenates in
          both modes: its graph records the operations the modules run, so a memory-efficient block
          traces to the plain mode's graph, with its outputs and gradients and its memory use
          (checkpointing would be traced through, leaving the same graph).
        """
        if isinstance(x, torch.fx.Proxy):  # its attributes are symbolic: no branching on them
            return BlockStrategy.CONCATENATE
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        # The plain mode and CUDA inference concatenate whatever the layers; no need to look at them.
        if not self.memory_efficient or (not needs_grad and x.device.type == 'cuda'):
            return BlockStrategy.CONCATENATE
        eager = not (torch.compiler.is_compiling() or torch.jit.is_tracing())
        if eager and all(shared_buffer_serves(layer.steps, layer.drop_rate) for layer in self.block):
            return BlockStrategy.SHARED_BUFFER
        return BlockStrategy.CHECKPOINT if needs_grad else BlockStrategy.CONCATENATE

    def forward(self, x: Tensor) -> Tensor:
        strategy = self.strategy(x)
        if strategy is BlockStrategy.SHARED_BUFFER:
            return shared_buffer_block(x, [layer.steps for layer in self.block], self.growth_rate)
        features = [x]
        for layer in self.block:
            features.append(layer(features, checkpoint=strategy is BlockStrategy.CHECKPOINT))
        return torch.cat(features, 1)


class _Transition(nn.Module):
    """Between two dense blocks: BN-act (the tap), then a 1x1 conv and 2x2 average pooling.

    Declared, and keyed, in the published order (norm, act, conv, pool), but it pools before the
    conv: the two commute (one mixes channels, the other averages pixels), and the conv then runs on
    a quarter of the pixels. Outputs agree with the published order to rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict, act_cfg: dict) -> None:
        super().__init__()
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.act = build_activation_layer(act_cfg)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tap ``act(norm(x))`` and the next block's input."""
        tap = self.act(self.norm(x))
        return tap, self.conv(self.pool(tap))


@MODELS.register_module()
class DenseNet(BaseModule):
    """DenseNet backbone.

    Args:
        arch: A name from ``DenseNet.arch_settings`` (``169`` for ``'169'``) or a dict with ``growth_rate``,
            ``depths`` and ``init_channels``, and optionally ``bn_size`` (bottleneck
            width in multiples of the growth rate, 0 for none), ``compression`` (channel
            ratio kept by transitions) and ``stem`` ('imagenet' or 'cifar').
        in_channels: Channels of the input image.
        out_indices: Dense blocks whose BN-act outputs are returned; negative indices
            count from the last block.
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and the first k dense
            blocks with the transitions that follow them.
        norm_eval: Keep every norm layer in eval mode while training.
        memory_efficient: Recompute in backward what the plain mode stores (BN-ReLU in the shared
            buffer, else concat-BN-act-conv1x1; see ``_DenseBlock.strategy``). Exact: outputs,
            gradients and running statistics equal the plain mode's.
        drop_rate: Dropout probability on each layer's new features.
        norm_cfg: Config of the norm layers.
        act_cfg: Config of the activations.
        init_cfg: Initialisation config; defaults to torchvision's scheme.
        bn_size, compression_factor: mmpretrain's DenseNet's arguments; ours takes them in ``arch``
            (as ``bn_size`` and ``compression``) and refuses them here with a TypeError that says so.

    Attributes:
        feature_info: One dict per dense block, as timm's: ``num_chs`` and ``reduction`` (stride) of
            its tap, and ``module``, the name of the activation whose output is the tap
            (``transitions.i.act``, and ``transitions.{last}.1`` for the final BN-act).
    """

    arch_settings: dict[str, ArchSetting] = {
        '121': _imagenet_arch(32, (6, 12, 24, 16), 64),
        '169': _imagenet_arch(32, (6, 12, 32, 32), 64),
        '201': _imagenet_arch(32, (6, 12, 48, 32), 64),
        '161': _imagenet_arch(48, (6, 12, 36, 24), 96),
        '264': _imagenet_arch(32, (6, 12, 64, 48), 64),
        'bc-l100-k12': _cifar_arch(100, 12, bc=True),
        'bc-l250-k24': _cifar_arch(250, 24, bc=True),
        'bc-l190-k40': _cifar_arch(190, 40, bc=True),
        'l40-k12': _cifar_arch(40, 12, bc=False),
        'l100-k12': _cifar_arch(100, 12, bc=False),
        'l100-k24': _cifar_arch(100, 24, bc=False),
    }
    arch_defaults: ArchSetting = dict(bn_size=4, compression=0.5, stem='imagenet')

    def __init__(
        self,
        arch: Union[str, int, dict] = '121',
        in_channels: int = 3,
        out_indices: Union[int, Sequence[int]] = -1,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        memory_efficient: bool = False,
        drop_rate: float = 0.0,
        norm_cfg: dict = dict(type='BN'),
        act_cfg: dict = dict(type='ReLU', inplace=True),
        init_cfg: Optional[Union[dict, list]] = (
            dict(type='Kaiming', layer='Conv2d', mode='fan_in', nonlinearity='relu'),
            dict(type='Constant', layer=['_BatchNorm', 'GroupNorm', 'LayerNorm'], val=1, bias=0),
        ),
        *,
        bn_size: None = None,
        compression_factor: None = None,
    ) -> None:
        self._refuse_mmpretrain_arguments(dict(bn_size=bn_size, compression_factor=compression_factor))
        super().__init__(init_cfg=list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        setting = self.resolve_arch(arch)
        depths = setting['depths']
        num_blocks = len(depths)
        self.out_indices = self._check_out_indices(out_indices, num_blocks)
        if not _is_positive_int(in_channels):
            raise ValueError(f'in_channels must be a positive int (the channels of the input), got {in_channels!r}')
        if not _is_int(frozen_stages) or not -1 <= frozen_stages <= num_blocks:
            raise ValueError(f'frozen_stages must be an integer from -1 to {num_blocks}, got {frozen_stages!r}')
        if not (_is_number(drop_rate) and 0 <= drop_rate < 1):
            raise ValueError(f'drop_rate must be a number in [0, 1), got {drop_rate!r}')
        for name, flag in (('norm_eval', norm_eval), ('memory_efficient', memory_efficient)):
            if not isinstance(flag, bool):
                raise ValueError(f'{name} must be True or False, got {flag!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.growth_rate = setting['growth_rate']

        init_channels = setting['init_channels']
        if setting['stem'] == 'imagenet':
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, init_channels, 7, stride=2, padding=3, bias=False),
                build_norm_layer(norm_cfg, init_channels)[1],
                build_activation_layer(act_cfg),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
            stride = 4
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, init_channels, 3, padding=1, bias=False))
            stride = 1

        self.stages = nn.ModuleList()
        self.transitions = nn.ModuleList()
        self.feature_info: list[dict[str, Union[int, str]]] = []
        channels = init_channels
        for i, num_layers in enumerate(depths):
            self.stages.append(
                _DenseBlock(
                    num_layers,
                    channels,
                    self.growth_rate,
                    memory_efficient,
                    bn_size=setting['bn_size'],
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg,
                    drop_rate=drop_rate,
                )
            )
            channels += num_layers * self.growth_rate
            if i < num_blocks - 1:
                out_channels = int(channels * setting['compression'])
                if out_channels == 0:
                    raise ValueError(
                        f"arch['compression'] must keep one of the {channels} channels of dense block {i}, "
                        f'so be at least {1 / channels:.3g}, got {setting["compression"]!r}'
                    )
                self.transitions.append(_Transition(channels, out_channels, norm_cfg, act_cfg))
                tap = 'act'
            else:
                # The final BN-act, keyed transitions.{i}.0.* as in mmpretrain's checkpoints.
                final = nn.Sequential(build_norm_layer(norm_cfg, channels)[1], build_activation_layer(act_cfg))
                self.transitions.append(final)
                out_channels, tap = channels, '1'
            self.feature_info.append(dict(num_chs=channels, reduction=stride * 2**i, module=f'transitions.{i}.{tap}'))
            channels = out_channels

        if memory_efficient:
            self._check_exact_recompute()
        self._freeze_stages()

    @classmethod
    def resolve_arch(cls, arch: Union[str, int, dict]) -> ArchSetting:
        """The full setting (with defaults) of a named or dict ``arch``; raises ValueError if invalid.

        An int names an ImageNet net as its string does (``169`` is ``'169'``), as configs and
        ``--cfg-options`` parse it.
        """
        if isinstance(arch, int) and not isinstance(arch, bool):
            arch = str(arch)
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_settings:
                raise ValueError(f'arch must be one of {sorted(cls.arch_settings)} or a dict, got {arch!r}')
            return {**cls.arch_defaults, **cls.arch_settings[arch.lower()]}
        if not isinstance(arch, dict):
            raise ValueError(f'arch must be a string, an int or a dict, got {type(arch).__name__}')
        required = {'growth_rate', 'depths', 'init_channels'}
        if not required <= arch.keys() or not arch.keys() <= ARCH_FIELDS.keys():
            raise ValueError(
                f'arch dict needs the keys {sorted(required)} and may have {sorted(cls.arch_defaults)}, '
                f'got {sorted(map(str, arch))}'
            )
        setting = {**cls.arch_defaults, **arch}
        for field, (allowed, valid) in ARCH_FIELDS.items():
            if not valid(setting[field]):
                raise ValueError(f'arch[{field!r}] must be {allowed}, got {setting[field]!r}')
        ints = {field: int(setting[field]) for field in ('growth_rate', 'init_channels', 'bn_size')}
        return {**setting, **ints, 'depths': tuple(map(int, setting['depths']))}

    @staticmethod
    def _refuse_mmpretrain_arguments(arguments: dict[str, object]) -> None:
        for name, value in arguments.items():
            if value is not None:
                key = MMPRETRAIN_ARGUMENTS[name]
                raise TypeError(
                    f"{name} is an argument of mmpretrain's DenseNet; ours takes it in arch, as "
                    f'arch=dict(growth_rate=..., depths=..., init_channels=..., {key}={value!r}) ({FROM_MMPRETRAIN})'
                )

    @staticmethod
    def _check_out_indices(out_indices: Union[int, Sequence[int]], num_blocks: int) -> tuple[int, ...]:
        if _is_int(out_indices):
            indices = (out_indices,)
        else:
            indices = (
                tuple(out_indices) if isinstance(out_indices, Sequence) and not isinstance(out_indices, str) else ()
            )
        allowed = f'integers in [{-num_blocks}, {num_blocks - 1}]'
        if not indices or not all(_is_int(i) and -num_blocks <= i < num_blocks for i in indices):
            raise ValueError(f'out_indices must be {allowed}, got {out_indices!r}')
        normalised = tuple(sorted(int(i) % num_blocks for i in indices))
        if len(set(normalised)) != len(normalised):
            raise ValueError(f'out_indices must not repeat a block, got {out_indices!r}')
        return normalised

    def _check_exact_recompute(self) -> None:
        for module in self.modules():
            if isinstance(module, NORM_TYPES) and not isinstance(module, EXACT_RECOMPUTE_NORMS):
                raise ValueError(
                    'memory_efficient=True needs norm layers that recompute exactly '
                    f'(BN, GN, LN, IN), got {type(module).__name__}; use memory_efficient=False'
                )

    def _freeze_stages(self) -> None:
        frozen = [self.stem] if self.frozen_stages >= 0 else []
        for i in range(max(self.frozen_stages, 0)):
            frozen += [self.stages[i], self.transitions[i]]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'DenseNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, NORM_TYPES):
                    module.eval()
        return self

    def init_weights(self) -> None:
        """mmengine's initialisation, but a ``Pretrained`` init_cfg loads through our own loader.

        It reads torchvision's, mmpretrain's and our layouts alike, from a file, an http(s) URL
        or ``torchvision://densenet121``, weights-only, and loads every tensor of the backbone
        or raises a CheckpointError (see :func:`mmdensenet.weights.load_pretrained`).
        """
        # mmdensenet.weights builds DenseNets to check checkpoints against, so it imports this module.
        from mmdensenet.weights.pretrained import with_our_loader

        init_cfg = self.init_cfg
        self.init_cfg = with_our_loader(init_cfg)
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the taps that ``forward`` returns."""
        return tuple(self.feature_info[i]['num_chs'] for i in self.out_indices)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.stem(x)
        taps = []
        for stage, transition in zip(self.stages[:-1], self.transitions[:-1]):
            tap, x = transition(stage(x))
            taps.append(tap)
        taps.append(self.transitions[-1](self.stages[-1](x)))
        return tuple(taps[i] for i in self.out_indices)
