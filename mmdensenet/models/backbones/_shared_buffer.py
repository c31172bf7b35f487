"""Dense blocks that write every layer's features into one pre-allocated buffer.

A plain dense block concatenates all earlier features before each layer, so it copies
them again and again, and autograd keeps every concatenation and every BN-ReLU output
for the backward pass: activation memory grows quadratically with depth. Here each layer
reads a channel prefix of a shared buffer and writes its new channels behind it. When
gradients are needed, :class:`_SharedBufferBlock` keeps only the buffer, each bottleneck
conv's output and the BatchNorm statistics, and its hand-written backward recomputes the
cheap BN-ReLU steps from them; the convolutions are never recomputed.
"""

import weakref
from collections.abc import Sequence
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


class _KeptMemory:
    """Memory for one dense block's large tensors on CPU, kept between its calls.

    Alone in a process, a train step would otherwise map its largest tensors afresh on every call:
    glibc hands a freed block larger than its mmap threshold (32 MiB at most), and the freed top of
    its heap, back to the system at once, and the kernel zeroes every page again on first touch.
    CUDA's caching allocator keeps memory by itself, so there each call allocates as usual.

    Each role keeps at most one chunk, and a chunk goes back to its role only once no tensor uses
    it: the tensors made on it share a storage that holds a NumPy array over the chunk, and the
    chunk returns when that array is freed. So a buffer is never written again while autograd has
    it saved (two forwards before one backward, a retained graph) or a caller still holds it.
    """

    def __init__(self) -> None:
        self._free: dict[str, Tensor] = {}

    def take(self, role: str, nbytes: int, device: torch.device) -> Tensor:
        """``nbytes`` bytes for ``role`` as a uint8 tensor, to make tensors on with :func:`_on`.

        The role's free chunk if it is large enough, else a new one (the old one is dropped).
        """
        if device.type != 'cpu':
            return torch.empty(nbytes, dtype=torch.uint8, device=device)
        chunk = self._free.pop(role, None)
        if chunk is None or chunk.numel() < nbytes:
            chunk = torch.empty(nbytes, dtype=torch.uint8)
        array = chunk.numpy()[:nbytes]  # freed when the last tensor on it goes
        weakref.finalize(array, self._free.setdefault, role, chunk)
        return torch.from_numpy(array)


_KEPT: 'weakref.WeakKeyDictionary[nn.Module, _KeptMemory]' = weakref.WeakKeyDictionary()


def _kept_memory(layers: Sequence[DenseLayerSteps]) -> _KeptMemory:
    """The kept memory of the block of ``layers`` (named by its first conv)."""
    key = layers[0][0].conv
    memory = _KEPT.get(key)
    if memory is None:
        memory = _KEPT[key] = _KeptMemory()
    return memory


def _on(memory: Tensor, shape: Sequence[int], dtype: torch.dtype, memory_format: torch.memory_format) -> Tensor:
    """A tensor of ``shape`` at the start of ``memory``, dense in ``memory_format``."""
    _, c, h, w = shape
    stride = (c * h * w, 1, w * c, c) if memory_format == torch.channels_last else (c * h * w, h * w, w, 1)
    return torch.empty(0, dtype=dtype, device=memory.device).set_(memory.untyped_storage(), 0, shape, stride)


class _Scratch(NamedTuple):
    """Where a block call puts each layer's dense input copy and, on CPU, each BN-ReLU output."""

    copies: Tensor
    normed: Optional[Tensor]
    memory_format: torch.memory_format

    @classmethod
    def of(cls, layers: Sequence[DenseLayerSteps], like: Tensor, dtype: torch.dtype) -> '_Scratch':
        n, _, h, w = like.shape
        widest = max(step.norm.num_features for step in layers[-1])  # the last layer's input, or a bottleneck
        nbytes = n * widest * h * w * max(like.element_size(), dtype.itemsize)
        kept = _kept_memory(layers)
        normed = kept.take('normed', nbytes, like.device) if like.device.type == 'cpu' else None
        return cls(kept.take('copies', nbytes, like.device), normed, _memory_format(like))

    def dense_copy(self, x: Tensor) -> Tensor:
        # A dense copy, as torch.cat makes: BatchNorm's kernels for strided inputs are slower
        # and round differently, and the plain mode is the reference to the last bit.
        return _on(self.copies, x.shape, x.dtype, self.memory_format).copy_(x)

    def normed_like(self, x: Tensor) -> Optional[Tensor]:
        return None if self.normed is None else _on(self.normed, x.shape, x.dtype, self.memory_format)


def _run_layers(
    x: Tensor, layers: Sequence[DenseLayerSteps], growth_rate: int, dtype: torch.dtype, record: Optional[list] = None
) -> Tensor:
    """Runs the block into a buffer with convolutions in ``dtype``.

    Appends what backward needs to ``record``: per step its input (but the first step's, a prefix of
    the buffer) and its :class:`_Stats`.
    """
    n, channels, h, w = x.shape
    memory_format = _memory_format(x)
    nbytes = n * (channels + len(layers) * growth_rate) * h * w * x.element_size()
    features = _kept_memory(layers).take('features', nbytes, x.device)
    buffer = _on(features, (n, channels + len(layers) * growth_rate, h, w), x.dtype, memory_format)
    buffer[:, :channels] = x
    scratch = _Scratch.of(layers, x, dtype)
    for steps in layers:
        out = scratch.dense_copy(buffer[:, :channels])
        for i, step in enumerate(steps):
            if record is not None and i > 0:
                record.append(out)
            out, stats = _norm_relu(step.norm, out, scratch.normed_like(out))
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
    grad_act = grad_act.to(act.dtype)
    torch.ops.aten.threshold_backward.grad_input(grad_act, act, 0, grad_input=grad_act)  # ReLU's, in place
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
        layers, growth_rate = ctx.layers, ctx.growth_rate
        memory_format = _memory_format(buffer)
        gradients = _kept_memory(layers).take('gradients', buffer.numel() * buffer.element_size(), buffer.device)
        grad_buffer = _on(gradients, buffer.shape, grad_out.dtype, memory_format).copy_(grad_out)
        del grad_out
        scratch = _Scratch.of(layers, buffer, ctx.dtype)
        param_grads: list[Optional[Tensor]] = []
        saved, impls = iter(reversed(record)), iter(reversed(ctx.impls))
        channels = ctx.in_channels + len(layers) * growth_rate
        for index in reversed(range(len(layers))):
            steps = layers[index]
            channels -= growth_rate
            grad = grad_buffer[:, channels : channels + growth_rate].contiguous(memory_format=memory_format)
            for i in reversed(range(len(steps))):
                reserve, invstd, mean = next(saved), next(saved), next(saved)
                stats = _Stats(mean, invstd, reserve, next(impls))
                inp = next(saved) if i > 0 else scratch.dense_copy(buffer[:, :channels])
                needs_input = i > 0 or index > 0 or ctx.needs_input_grad[0]
                normed = scratch.normed_like(inp)
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
