"""Dense blocks that write every layer's features into one pre-allocated buffer.

A plain dense block concatenates all earlier features before each layer, so it copies
them again and again, and autograd keeps every concatenation and every BN-ReLU output
for the backward pass: activation memory grows quadratically with depth. Here each layer
reads a channel prefix of a shared buffer and writes its new channels behind it. When
gradients are needed, :class:`_SharedBufferBlock` keeps only the buffer, each bottleneck
conv's output and the BatchNorm statistics, and its hand-written backward recomputes the
cheap BN-ReLU steps from them; the convolutions are never recomputed.

On CPU the BN-ReLU outputs, which every layer computes and drops again (twice with the
recomputation), go into one chunk of memory kept between calls (:class:`_Scratch`).
"""

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.autograd.function import once_differentiable


class NormActConv(NamedTuple):
    """One norm-act-conv step of a dense layer; calling it runs the three modules."""

    norm: nn.Module
    act: nn.Module
    conv: nn.Conv2d

    def __call__(self, x: Tensor) -> Tensor:
        return self.conv(self.act(self.norm(x)))


DenseLayerSteps = Sequence[NormActConv]


def shared_buffer_serves(steps: DenseLayerSteps, drop_rate: float) -> bool:
    """Whether :func:`shared_buffer_block` can run a dense layer of these steps as its modules would.

    It runs BatchNorm through ATen and ReLU by hand instead of calling the modules, its backward
    recomputes both from the saved statistics, and it has no dropout. So every step's norm must be an
    affine ``nn.BatchNorm2d`` (not a subclass, which may compute otherwise) and its act ``nn.ReLU``.
    """
    return drop_rate == 0 and all(
        type(step.norm) is nn.BatchNorm2d and step.norm.affine and type(step.act) is nn.ReLU for step in steps
    )


class _Stats(NamedTuple):
    """What a BatchNorm call leaves for its backward: batch mean and inverse std (empty when the
    running statistics were used), cuDNN's reserve space and the kernel ATen chose."""

    mean: Tensor
    invstd: Tensor
    reserve: Tensor
    impl: int


def _uses_batch_stats(norm: nn.BatchNorm2d) -> bool:
    return norm.training or norm.running_mean is None


def _norm_relu(norm: nn.BatchNorm2d, x: Tensor, out: Optional[Tensor] = None) -> tuple[Tensor, _Stats]:
    """``relu(norm(x))`` with nn.BatchNorm2d's bookkeeping; also returns what backward needs.

    It calls the ATen function that ``nn.BatchNorm2d`` calls, so every device runs the same
    kernel as the plain mode (cuDNN on CUDA, ATen's own on CPU) and gets the same output. On CPU
    that function is ``native_batch_norm``, which writes into ``out`` where given.
    """
    momentum = 0.0 if norm.momentum is None else norm.momentum
    if norm.training and norm.track_running_stats:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:
            momentum = 1.0 / float(norm.num_batches_tracked)
    track = not norm.training or norm.track_running_stats
    running_mean, running_var = (norm.running_mean, norm.running_var) if track else (None, None)
    args = (x, norm.weight, norm.bias, running_mean, running_var, _uses_batch_stats(norm), momentum, norm.eps)
    if out is None:
        out, mean, invstd, reserve, impl = torch.ops.aten._batch_norm_impl_index(*args, torch.backends.cudnn.enabled)
    else:
        mean, invstd = x.new_empty(0, dtype=norm.weight.dtype), x.new_empty(0, dtype=norm.weight.dtype)
        torch.ops.aten.native_batch_norm.out(*args, out=out, save_mean=mean, save_invstd=invstd)
        reserve, impl = x.new_empty(0, dtype=torch.uint8), 0
    return out.relu_(), _Stats(mean, invstd, reserve, impl)


def _replay_norm_relu(norm: nn.BatchNorm2d, x: Tensor, stats: _Stats, out: Optional[Tensor] = None) -> Tensor:
    """Recomputes ``relu(norm(x))`` from the statistics the forward pass used (into ``out`` where given).

    BatchNorm's CPU kernel computes ``x * scale + shift`` with ``scale = invstd * weight`` and
    ``shift = bias - mean * scale`` (a fused multiply-add, one rounding, hence the float64 step);
    an eval-mode call with zero mean, unit variance and no eps then repeats it to the last bit
    (float32 and bfloat16), so the recomputed ReLU masks equal the forward ones.
    """
    if _uses_batch_stats(norm):
        mean, invstd = stats.mean, stats.invstd
    else:
        mean, invstd = norm.running_mean, (norm.running_var + norm.eps).rsqrt()
    scale = invstd * norm.weight
    shift = (norm.bias.double() - mean.double() * scale.double()).to(scale.dtype)
    args = (x, scale, shift, torch.zeros_like(scale), torch.ones_like(scale), False, 0.0, 0.0)
    if out is None:
        out = torch.ops.aten.native_batch_norm(*args)[0]
    else:
        unused = x.new_empty(0, dtype=scale.dtype)
        torch.ops.aten.native_batch_norm.out(*args, out=out, save_mean=unused, save_invstd=unused)
    return out.relu_()


def _conv(conv: nn.Conv2d, x: Tensor, dtype: torch.dtype) -> Tensor:
    """The conv in ``dtype``, as autocast runs it (input and weight cast, no bias)."""
    weight = conv.weight.to(dtype)
    return torch.conv2d(x.to(dtype), weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class _Scratch:
    """CPU memory for the BN-ReLU outputs of dense layers, kept between calls.

    Alone in a process, a train step would otherwise map these tensors afresh for every layer: glibc
    hands a freed block larger than its mmap threshold (at most 32 MiB) back to the system at once,
    and the top of its heap once twice that is free there, and the kernel zeroes every page again
    on first touch. One chunk, as large as the largest BN-ReLU output so far, serves the blocks of
    every model in turn and lives as long as any of them (see :func:`_scratch`); between calls it
    holds nothing a caller or autograd could see. (CUDA's caching allocator keeps memory by itself.)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: Optional[Tensor] = None

    @contextmanager
    def lease(self, nbytes: int) -> Iterator[Tensor]:
        """At least ``nbytes`` bytes (uint8) for the caller alone: the kept chunk if it is free and large enough."""
        with self._lock:
            chunk, self._kept = self._kept, None
        if chunk is None or chunk.numel() < nbytes:
            chunk = torch.empty(nbytes, dtype=torch.uint8)
        try:
            yield chunk
        finally:
            with self._lock:
                if self._kept is None or self._kept.numel() < chunk.numel():
                    self._kept = chunk


_BLOCKS: 'weakref.WeakKeyDictionary[nn.Module, _Scratch]' = weakref.WeakKeyDictionary()
_shared_scratch = weakref.ref(_Scratch())  # dead at once: the first block makes the scratch


def _scratch(layers: Sequence[DenseLayerSteps]) -> _Scratch:
    """The scratch all blocks share; each block (named by its first conv) keeps it alive."""
    global _shared_scratch
    key = layers[0][0].conv
    if key not in _BLOCKS:
        scratch = _shared_scratch()
        if scratch is None:
            scratch = _Scratch()
            _shared_scratch = weakref.ref(scratch)
        _BLOCKS[key] = scratch
    return _BLOCKS[key]


def _normed_scratch(
    layers: Sequence[DenseLayerSteps], like: Tensor, dtype: torch.dtype
) -> AbstractContextManager[Optional[Tensor]]:
    """A lease on the scratch large enough for every BN-ReLU output of the block on ``like``; none off CPU."""
    if like.device.type != 'cpu':
        return nullcontext()
    n, _, h, w = like.shape
    widest = max(step.norm.num_features for step in layers[-1])  # the last layer's input, or a bottleneck
    return _scratch(layers).lease(n * widest * h * w * max(like.element_size(), dtype.itemsize))


def _on(memory: Optional[Tensor], like: Tensor, memory_format: torch.memory_format) -> Optional[Tensor]:
    """A dense tensor shaped and typed as ``like`` at the start of ``memory`` (none without memory)."""
    if memory is None:
        return None
    _, c, h, w = like.shape
    stride = (c * h * w, 1, w * c, c) if memory_format == torch.channels_last else (c * h * w, h * w, w, 1)
    return like.new_empty(0).set_(memory.untyped_storage(), 0, like.shape, stride)


def _dense_prefix(buffer: Tensor, channels: int, memory_format: torch.memory_format) -> Tensor:
    # A dense copy, as torch.cat makes: BatchNorm's kernels for strided inputs are slower
    # and round differently, and the plain mode is the reference to the last bit.
    return buffer[:, :channels].contiguous(memory_format=memory_format)


def _run_layers(
    x: Tensor, layers: Sequence[DenseLayerSteps], growth_rate: int, dtype: torch.dtype, record: Optional[list] = None
) -> Tensor:
    """Runs the block into a fresh buffer with convolutions in ``dtype``.

    Appends what backward needs to ``record``: per step its input (but the first step's, a prefix of
    the buffer) and its :class:`_Stats`.
    """
    memory_format = _memory_format(x)
    buffer = torch.empty(
        (x.shape[0], x.shape[1] + len(layers) * growth_rate, *x.shape[2:]),
        dtype=x.dtype, device=x.device, memory_format=memory_format,
    )  # fmt: skip
    buffer[:, : x.shape[1]] = x
    channels = x.shape[1]
    with _normed_scratch(layers, x, dtype) as scratch:
        for steps in layers:
            out = _dense_prefix(buffer, channels, memory_format)
            for i, step in enumerate(steps):
                if record is not None and i > 0:
                    record.append(out)
                out, stats = _norm_relu(step.norm, out, _on(scratch, out, memory_format))
                if record is not None:
                    record.append(stats)
                out = _conv(step.conv, out, dtype)
            buffer[:, channels : channels + growth_rate] = out
            channels += growth_rate
    return buffer


def _step_backward(
    step: NormActConv,
    inp: Tensor,
    stats: _Stats,
    grad_out: Tensor,
    dtype: torch.dtype,
    needs_input: bool,
    normed: Optional[Tensor],
) -> tuple[Optional[Tensor], list[Optional[Tensor]]]:
    """Gradients of one BN-ReLU-conv step: its input's, then its norm's weight and bias and its conv's.

    The recomputed BN-ReLU output goes into ``normed`` where given.
    """
    norm, conv = step.norm, step.conv
    act = _replay_norm_relu(norm, inp, stats, normed)
    weight = conv.weight.to(dtype)
    grad_act, grad_conv = torch.ops.aten.convolution_backward(
        grad_out.to(dtype), act.to(dtype), weight, None, conv.stride, conv.padding, conv.dilation,
        False, [0, 0], conv.groups, [True, conv.weight.requires_grad, False],
    )[:2]  # fmt: skip
    # ReLU's backward, written over its output: the two dense tensors of this size alive during the
    # norm's backward are then its input and this gradient, as in the plain mode.
    grad_act = torch.ops.aten.threshold_backward.grad_input(grad_act.to(act.dtype), act, 0, grad_input=act)
    del act
    batch_stats = _uses_batch_stats(norm)
    # Running statistics: ATen's own backward, as autograd takes for every eval-mode BatchNorm
    # (cuDNN's backward knows batch statistics only).
    grad_in, grad_weight, grad_bias = torch.ops.aten._batch_norm_impl_index_backward(
        stats.impl if batch_stats else 0, inp, grad_act, norm.weight, norm.running_mean, norm.running_var,
        stats.mean, stats.invstd, batch_stats, norm.eps,
        [needs_input, norm.weight.requires_grad, norm.bias.requires_grad], stats.reserve,
    )  # fmt: skip
    if grad_conv is not None:
        grad_conv = grad_conv.to(conv.weight.dtype)
    return grad_in, [grad_weight, grad_bias, grad_conv]


class _SharedBufferBlock(torch.autograd.Function):
    """Dense block over a shared buffer that recomputes BN-ReLU in backward.

    Inputs are the block input, the layers, the growth rate, the convolutions' dtype and then, per
    step, the norm's weight and bias and the conv's weight, so that autograd routes their gradients.
    """

    @staticmethod
    def forward(
        ctx, x: Tensor, layers: Sequence[DenseLayerSteps], growth_rate: int, dtype: torch.dtype, *params: Tensor
    ) -> Tensor:
        record: list = []
        buffer = _run_layers(x, layers, growth_rate, dtype, record)
        ctx.layers, ctx.growth_rate, ctx.dtype, ctx.in_channels = layers, growth_rate, dtype, x.shape[1]
        ctx.impls = [item.impl for item in record if isinstance(item, _Stats)]
        tensors = [t for item in record for t in (item[:3] if isinstance(item, _Stats) else (item,))]
        ctx.save_for_backward(buffer, *tensors)
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
        saved, impls = iter(reversed(record)), iter(reversed(ctx.impls))
        channels = ctx.in_channels + len(layers) * growth_rate
        with _normed_scratch(layers, buffer, ctx.dtype) as scratch:
            for index in reversed(range(len(layers))):
                steps = layers[index]
                channels -= growth_rate
                grad = grad_buffer[:, channels : channels + growth_rate].contiguous(memory_format=memory_format)
                for i in reversed(range(len(steps))):
                    reserve, invstd, mean = next(saved), next(saved), next(saved)
                    stats = _Stats(mean, invstd, reserve, next(impls))
                    inp = next(saved) if i > 0 else _dense_prefix(buffer, channels, memory_format)
                    needs_input = i > 0 or index > 0 or ctx.needs_input_grad[0]
                    normed = _on(scratch, inp, memory_format)
                    grad, step_grads = _step_backward(steps[i], inp, stats, grad, ctx.dtype, needs_input, normed)
                    del inp, normed
                    param_grads[:0] = step_grads
                if grad is not None:
                    grad_buffer[:, :channels] += grad
                del grad
        grad_x = grad_buffer[:, : ctx.in_channels] if ctx.needs_input_grad[0] else None
        return (grad_x, None, None, None, *param_grads)


def _layer_params(layers: Sequence[DenseLayerSteps]) -> list[Tensor]:
    """The tensors :class:`_SharedBufferBlock` takes after its first four inputs."""
    return [t for steps in layers for step in steps for t in (step.norm.weight, step.norm.bias, step.conv.weight)]


def shared_buffer_block(x: Tensor, layers: Sequence[DenseLayerSteps], growth_rate: int) -> Tensor:
    """Runs a dense block of layers that :func:`shared_buffer_serves` and returns all its features.

    Under autocast the convolutions run in its dtype, as in the plain mode, and the buffer keeps
    the dtype of ``x`` (the stem's output, so autocast's dtype too). Stores only what the
    hand-written backward needs when gradients are required.
    """
    params = _layer_params(layers)
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else params[-1].dtype
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return _SharedBufferBlock.apply(x, layers, growth_rate, dtype, *params)
    with torch.no_grad():
        return _run_layers(x, layers, growth_rate, dtype)
