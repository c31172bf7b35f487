"""Parameters and FLOPs of a model, in the two conventions found in OpenMMLab's numbers.

Both count one image on the ``extract_feat`` path (backbone and neck, not the head), as
mmpretrain's ``get_flops`` does.

* ``table``: the convention of the FLOPs in mmpretrain's model-zoo tables (mmcv 1.x's
  counter): one per multiply-add of a convolution or linear layer (plus one per output
  element for a bias), two per input element of an affine norm layer (one if not affine),
  one per output element of an activation and one per input element of a pooling layer.
  For DenseNet that is the convolutions' multiply-adds, 3 per BatchNorm input element (the
  BN and the ReLU after it) and the inputs of the max-pool, average pools and global pool.
* ``mmengine``: ``mmengine.analysis.FlopAnalyzer``, what mmengine's
  ``get_model_complexity_info`` reports: traced convolutions and matrix products, 2 per
  element of ``batch_norm``, 1 per input element of adaptive average pooling.

Our DenseNet runs each transition's average pooling before its 1x1 convolution (they commute),
so it executes fewer FLOPs than the published order (convolution, then pooling: the paper,
torchvision, mmpretrain and its tables). ``analyze_complexity(..., published_order=True)`` counts
the published order by running it.
"""

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from ..models.backbones.densenet import _Transition

aten = torch.ops.aten


@dataclass(frozen=True)
class Complexity:
    """Parameter count of the whole model and FLOPs of one image in both conventions."""

    params: int
    flops: int  # the table's convention
    mmengine_flops: int

    def table_style(self) -> str:
        """Params(M) / Flops(G) as mmpretrain's tables print them, e.g. ``7.98M / 2.88G``."""
        return f'{self.params / 1e6:.2f}M / {self.flops / 1e9:.2f}G'


def _multiply_adds(args: tuple, out: Tensor) -> int:
    """Convolutions and matrix products: one per multiply-add, plus one per output element for a bias."""
    op_input, weight, bias = args[0], args[1], args[2]
    if weight.dim() > 2:  # convolution(input, weight, bias, stride, padding, dilation, transposed, ...)
        # Each output element (each input element when transposed) meets one filter slice weight[i].
        positions = op_input.numel() if args[6] else out.numel()
        return positions * weight[0].numel() + (out.numel() if bias is not None else 0)
    if op_input.dim() == 1:  # addmm(bias, mat1, mat2)
        op_input, weight, bias = weight, bias, op_input
    return op_input.numel() * weight.shape[-1] + (out.numel() if bias is not None else 0)


def _norm(weight_index: int):
    def count(args: tuple, out: object) -> int:
        affine = len(args) > weight_index and args[weight_index] is not None
        return args[0].numel() * (2 if affine else 1)

    return count


def _input_elements(args: tuple, out: object) -> int:
    return args[0].numel()


def _output_elements(args: tuple, out: Tensor) -> int:
    return out.numel()


_batch_norm = _norm(weight_index=1)
# What each ATen operation costs in the table's convention; operations not listed cost nothing.
TABLE_CONVENTION = {
    aten.convolution: _multiply_adds,
    aten.addmm: _multiply_adds,
    aten.mm: lambda args, out: args[0].numel() * args[1].shape[-1],
    aten.bmm: lambda args, out: args[0].numel() * args[1].shape[-1],
    **dict.fromkeys(
        (
            aten.native_batch_norm,
            aten._native_batch_norm_legit,
            aten._native_batch_norm_legit_no_training,
            aten.cudnn_batch_norm,
            aten.miopen_batch_norm,
            aten.native_group_norm,
        ),
        _batch_norm,
    ),
    aten.native_layer_norm: _norm(weight_index=2),
    **dict.fromkeys(
        (
            aten.relu,
            aten.relu_,
            aten.hardtanh,
            aten.hardtanh_,
            aten.leaky_relu,
            aten.leaky_relu_,
            aten._prelu_kernel,
            aten.elu,
            aten.elu_,
            aten.gelu,
            aten.silu,
            aten.silu_,
            aten.mish,
            aten.sigmoid,
            aten.sigmoid_,
            aten.hardsigmoid,
            aten.hardswish,
            aten.hardswish_,
            aten.tanh,
            aten.tanh_,
        ),
        _output_elements,
    ),
    **dict.fromkeys(
        (
            aten.max_pool1d,
            aten.max_pool2d,
            aten.max_pool2d_with_indices,
            aten.max_pool3d_with_indices,
            aten.avg_pool2d,
            aten.avg_pool3d,
            aten._adaptive_avg_pool2d,
            aten._adaptive_avg_pool3d,
            aten.adaptive_max_pool2d,
            aten.adaptive_max_pool3d,
            aten.mean,  # global average pooling runs as a mean over the spatial dimensions
        ),
        _input_elements,
    ),
}


# TorchDispatchMode lives in a private module but is the extension point that PyTorch's notes on extending
# torch teach; the public torch.utils.flop_counter.FlopCounterMode is built on it, but counts its own convention,
# decomposes the operations it has no formula for and hooks every module. Tested at torch 2.6 and 2.14.
class _TableFlopCounter(TorchDispatchMode):
    """Adds up the cost of every ATen operation that runs, whichever module or function calls it."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        cost = TABLE_CONVENTION.get(func.overloadpacket)
        if cost is not None:
            self.total += cost(args, out)
        return out


def count_table_flops(model: Callable[[Tensor], object], inputs: Tensor) -> int:
    """FLOPs of ``model(inputs)`` in the convention of mmpretrain's tables (see the module doc)."""
    with torch.no_grad(), _TableFlopCounter() as counter:
        model(inputs)
    return counter.total


def count_mmengine_flops(model: nn.Module, inputs: Tensor) -> int:
    """FLOPs of ``model(inputs)`` as mmengine's ``get_model_complexity_info`` counts them."""
    analyzer = FlopAnalyzer(model, (inputs,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        return analyzer.total()


class _FeatureExtractor(nn.Module):
    """``model.extract_feat`` as a module's forward, so both counters trace that path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> object:
        return self.model.extract_feat(inputs)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def published_transition_order(model: nn.Module) -> Iterator[None]:
    """Makes the transitions of every ``mmdensenet.DenseNet`` in ``model`` convolve first, then pool.

    Each transition's ``conv`` becomes conv-then-pool and its ``pool`` an identity, whichever order the
    transition calls them in; the outputs stay the same (up to rounding), as the two commute.
    """
    transitions = [
        (transition, transition.conv, transition.pool)
        for transition in model.modules()
        if isinstance(transition, _Transition)
    ]
    for transition, conv, pool in transitions:
        transition.conv, transition.pool = nn.Sequential(conv, pool), nn.Identity()
    try:
        yield
    finally:
        for transition, conv, pool in transitions:
            transition.conv, transition.pool = conv, pool


def analyze_complexity(
    model: nn.Module, input_shape: tuple[int, ...] = (3, 224, 224), published_order: bool = False
) -> Complexity:
    """Parameters and FLOPs of one ``input_shape`` image (channels first).

    The FLOPs follow ``model.extract_feat`` when the model has it (a classifier's backbone
    and neck), else its forward; with ``published_order``, DenseNet transitions as published.
    """
    counted = _FeatureExtractor(model) if hasattr(model, 'extract_feat') else model
    params = sum(param.numel() for param in model.parameters())
    inputs = torch.randn(1, *input_shape, device=next(model.parameters()).device)
    order = published_transition_order(model) if published_order else nullcontext()
    with _eval_mode(model), order:
        return Complexity(params, count_table_flops(counted, inputs), count_mmengine_flops(counted, inputs))
