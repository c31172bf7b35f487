"""Dense blocks that write every layer's features into one pre-allocated buffer.

A plain dense block concatenates all earlier features before each layer, so it copies
them again and again, and autograd keeps every concatenation and every BN-ReLU output
for the backward pass: activation memory grows quadratically with depth. Here each layer
reads a channel prefix of a shared buffer and writes its new channels behind it. When
gradients are needed, :class:`_SharedBufferBlock` keeps only the buffer, each bottleneck
conv's output and the BatchNorm statistics, and its hand-written backward recomputes the
cheap BN-ReLU steps from them; the convolutions are never recomputed.
"""

from collections.abc import Sequence
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.autograd.function import once_differentiable


class NormActConv(NamedTuple):
    """One BN-ReLU-conv step of a dense layer."""

    norm: nn.BatchNorm2d
    conv: nn.Conv2d


DenseLayerSteps = Sequence[NormActConv]


class _Stats(NamedTuple):
    """Mean and inverse std a BatchNorm used; the running ones in eval mode."""

    mean: Tensor
    invstd: Tensor


def _uses_batch_stats(norm: nn.BatchNorm2d) -> bool:
    return norm.training or norm.running_mean is None


def _norm_relu(norm: nn.BatchNorm2d, x: Tensor) -> tuple[Tensor, _Stats]:
    """``relu(norm(x))`` with nn.BatchNorm2d's bookkeeping; also returns the statistics used."""
    momentum = 0.0 if norm.momentum is None else norm.momentum
    if norm.training and norm.track_running_stats:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:
            momentum = 1.0 / float(norm.num_batches_tracked)
    batch_stats = _uses_batch_stats(norm)
    track = not norm.training or norm.track_running_stats
    running_mean, running_var = (norm.running_mean, norm.running_var) if track else (None, None)
    out, mean, invstd = torch.ops.aten.native_batch_norm(
        x, norm.weight, norm.bias, running_mean, running_var, batch_stats, momentum, norm.eps
    )
    if not batch_stats:
        mean, invstd = norm.running_mean.clone(), (norm.running_var + norm.eps).rsqrt()
    return out.relu_(), _Stats(mean, invstd)


def _replay_norm_relu(norm: nn.BatchNorm2d, x: Tensor, stats: _Stats) -> Tensor:
    """Recomputes ``relu(norm(x))`` from the statistics the forward pass used.

    BatchNorm's CPU kernel computes ``x * scale + shift`` with ``scale = invstd * weight`` and
    ``shift = bias - mean * scale`` (a fused multiply-add, one rounding, hence the float64 step);
    an eval-mode call with zero mean, unit variance and no eps then repeats it to the last bit,
    so the recomputed ReLU masks equal the forward ones.
    """
    scale = stats.invstd * norm.weight
    shift = (norm.bias.double() - stats.mean.double() * scale.double()).to(scale.dtype)
    zeros, ones = torch.zeros_like(scale), torch.ones_like(scale)
    out = torch.ops.aten.native_batch_norm(x, scale, shift, zeros, ones, False, 0.0, 0.0)[0]
    return out.relu_()


def _conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    return torch.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _new_buffer(x: Tensor, channels: int) -> Tensor:
    shape = (x.shape[0], channels, *x.shape[2:])
    buffer = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(x))
    buffer[:, : x.shape[1]] = x
    return buffer


def _run_layers(
    x: Tensor, layers: Sequence[DenseLayerSteps], growth_rate: int, record: Optional[list] = None
) -> Tensor:
    """Runs the block into a fresh buffer; appends what backward needs to ``record``."""
    buffer = _new_buffer(x, x.shape[1] + len(layers) * growth_rate)
    memory_format = _memory_format(buffer)
    channels = x.shape[1]
    for steps in layers:
        # A dense copy, as torch.cat makes: BatchNorm's kernels for strided inputs are slower
        # and round differently, and the plain mode is the reference to the last bit.
        out = buffer[:, :channels].contiguous(memory_format=memory_format)
        for i, step in enumerate(steps):
            if record is not None and i > 0:
                record.append(out)
            out, stats = _norm_relu(step.norm, out)
            if record is not None:
                record.extend(stats)
            out = _conv(step.conv, out)
        buffer[:, channels : channels + growth_rate] = out
        channels += growth_rate
    return buffer


def _step_backward(
    step: NormActConv, inp: Tensor, stats: _Stats, grad_out: Tensor, needs_input: bool
) -> tuple[Optional[Tensor], list[Optional[Tensor]]]:
    """Gradients of one BN-ReLU-conv step: its input's, then its norm's weight and bias and its conv's."""
    norm, conv = step
    act = _replay_norm_relu(norm, inp, stats)
    grad_act, grad_conv = torch.ops.aten.convolution_backward(
        grad_out, act, conv.weight, None, conv.stride, conv.padding, conv.dilation,
        False, [0, 0], conv.groups, [True, conv.weight.requires_grad, False],
    )[:2]  # fmt: skip
    torch.ops.aten.threshold_backward.grad_input(grad_act, act, 0, grad_input=grad_act)  # ReLU's, in place
    del act
    grad_in, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
        grad_act, inp, norm.weight, norm.running_mean, norm.running_var, stats.mean, stats.invstd,
        _uses_batch_stats(norm), norm.eps, [needs_input, norm.weight.requires_grad, norm.bias.requires_grad],
    )  # fmt: skip
    return grad_in, [grad_weight, grad_bias, grad_conv]


class _SharedBufferBlock(torch.autograd.Function):
    """Dense block over a shared buffer that recomputes BN-ReLU in backward.

    Inputs are the block input, the layers, the growth rate and then, per step, the norm's
    weight and bias and the conv's weight, so that autograd routes their gradients.
    """

    @staticmethod
    def forward(ctx, x: Tensor, layers: Sequence[DenseLayerSteps], growth_rate: int, *params: Tensor) -> Tensor:
        record: list[Tensor] = []
        buffer = _run_layers(x, layers, growth_rate, record)
        ctx.layers, ctx.growth_rate, ctx.in_channels = layers, growth_rate, x.shape[1]
        ctx.save_for_backward(buffer, *record)
        return buffer

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Optional[Tensor], ...]:
        buffer, *record = ctx.saved_tensors
        memory_format = _memory_format(buffer)
        grad_buffer = grad_out.clone(memory_format=memory_format)
        del grad_out
        layers, growth_rate = ctx.layers, ctx.growth_rate
        param_grads: list[Optional[Tensor]] = []
        saved = iter(reversed(record))
        channels = ctx.in_channels + len(layers) * growth_rate
        for index in reversed(range(len(layers))):
            steps = layers[index]
            channels -= growth_rate
            grad = grad_buffer[:, channels : channels + growth_rate].contiguous(memory_format=memory_format)
            for i in reversed(range(len(steps))):
                invstd, mean = next(saved), next(saved)
                inp = next(saved) if i > 0 else buffer[:, :channels].contiguous(memory_format=memory_format)
                needs_input = i > 0 or index > 0 or ctx.needs_input_grad[0]
                grad, step_grads = _step_backward(steps[i], inp, _Stats(mean, invstd), grad, needs_input)
                del inp
                param_grads[:0] = step_grads
            if grad is not None:
                grad_buffer[:, :channels] += grad
            del grad
        grad_x = grad_buffer[:, : ctx.in_channels] if ctx.needs_input_grad[0] else None
        return (grad_x, None, None, *param_grads)


def _layer_params(layers: Sequence[DenseLayerSteps]) -> list[Tensor]:
    """The tensors :class:`_SharedBufferBlock` takes after its first three inputs."""
    return [t for steps in layers for step in steps for t in (step.norm.weight, step.norm.bias, step.conv.weight)]


def shared_buffer_block(x: Tensor, layers: Sequence[DenseLayerSteps], growth_rate: int) -> Tensor:
    """Runs a dense block of BN-ReLU-conv layers and returns all its features.

    Stores only what the hand-written backward needs when gradients are required.
    """
    params = _layer_params(layers)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return _SharedBufferBlock.apply(x, layers, growth_rate, *params)
    with torch.no_grad():
        return _run_layers(x, layers, growth_rate)
