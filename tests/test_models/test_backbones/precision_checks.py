"""One train step of the plain and the memory-efficient mode, judged against a float64 reference.

Rounding moves every mode away from the exact result, the more the lower the precision. A mode is
judged by how far it lands from a float64 run of the same weights, compared with how far the
plain mode lands under the same precision, never by a tolerance fitted to pass.
"""

import copy
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from mmdensenet.models import DenseNet


class StepResult(NamedTuple):
    outputs: tuple[Tensor, ...]
    grads: dict[str, Optional[Tensor]]
    buffers: dict[str, Tensor]


def train_step(model: nn.Module, x: Tensor, amp_dtype: Optional[torch.dtype] = None) -> StepResult:
    """A forward (under autocast if ``amp_dtype``) and a backward of a fixed random weighting of the outputs.

    The outputs are a sequence, or a dict taken in its order (as ``create_feature_extractor`` returns them).
    """
    with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        outputs = model(x)
    if isinstance(outputs, dict):
        outputs = tuple(outputs.values())
    generator = torch.Generator().manual_seed(1)
    weights = [torch.randn(o.shape, generator=generator, dtype=torch.float64).to(x.device) for o in outputs]
    sum((o.double() * w).sum() for o, w in zip(outputs, weights)).backward()
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    return StepResult(tuple(o.detach() for o in outputs), grads, {n: b.clone() for n, b in model.named_buffers()})


def twins(arch: dict, memory_format: torch.memory_format = torch.contiguous_format, **kwargs) -> tuple[DenseNet, ...]:
    """A plain model, a memory-efficient one and a float64 reference, all with the same weights, in train mode."""
    plain = DenseNet(arch, out_indices=tuple(range(len(arch['depths']))), **kwargs)
    efficient = DenseNet(arch, out_indices=plain.out_indices, memory_efficient=True, **kwargs)
    efficient.load_state_dict(plain.state_dict())
    reference = copy.deepcopy(plain).double()
    return tuple(m.to(memory_format=memory_format).train() for m in (plain, efficient, reference))


def _flat(tensors: list[Optional[Tensor]]) -> Tensor:
    return torch.cat([t.double().flatten() for t in tensors if t is not None])


def distances(result: StepResult, reference: StepResult) -> tuple[float, float]:
    """Relative distances of ``result``'s outputs and of its parameter gradients from ``reference``'s."""
    out, ref_out = _flat(list(result.outputs)), _flat(list(reference.outputs))
    names = [n for n, g in reference.grads.items() if g is not None]
    grad, ref_grad = _flat([result.grads[n] for n in names]), _flat([reference.grads[n] for n in names])
    return ((out - ref_out).norm() / ref_out.norm()).item(), ((grad - ref_grad).norm() / ref_grad.norm()).item()


def assert_same_bookkeeping(plain: StepResult, efficient: StepResult) -> None:
    """Same output dtypes, the same parameters get gradients, running statistics updated once, as the plain mode."""
    assert [o.dtype for o in efficient.outputs] == [o.dtype for o in plain.outputs]
    assert [n for n, g in efficient.grads.items() if g is None] == [n for n, g in plain.grads.items() if g is None]
    for name, buffer in plain.buffers.items():
        if name.endswith('num_batches_tracked'):
            assert efficient.buffers[name].item() == buffer.item() <= 1, name


def assert_within_plain_rounding(plain: StepResult, efficient: StepResult, reference: StepResult) -> None:
    """The memory-efficient step is as close to float64 as the plain one, and as close to it as it is to float64.

    Allows 1.25x the plain mode's distance from the reference: the two modes round the same
    operations in different orders (cuDNN and reduction order), so neither is more exact.
    """
    assert_same_bookkeeping(plain, efficient)
    plain_out, plain_grad = distances(plain, reference)
    efficient_out, efficient_grad = distances(efficient, reference)
    between_out, between_grad = distances(efficient, plain)
    assert efficient_out <= 1.25 * plain_out and efficient_grad <= 1.25 * plain_grad, (
        f'from float64: outputs {efficient_out:.3g} vs plain {plain_out:.3g}, '
        f'gradients {efficient_grad:.3g} vs plain {plain_grad:.3g}'
    )
    assert between_out <= 2 * plain_out and between_grad <= 2 * plain_grad
    for name, buffer in plain.buffers.items():
        if buffer.is_floating_point():
            ref = reference.buffers[name]
            plain_error = (buffer.double() - ref).norm()
            assert (efficient.buffers[name].double() - ref).norm() <= 1.25 * plain_error + 1e-12, name


def assert_bitwise_equal(plain: StepResult, efficient: StepResult) -> None:
    assert_same_bookkeeping(plain, efficient)
    for a, b in zip(plain.outputs, efficient.outputs):
        assert torch.equal(a, b)
    for name, grad in plain.grads.items():
        assert (grad is None and efficient.grads[name] is None) or torch.equal(grad, efficient.grads[name]), name
    for name, buffer in plain.buffers.items():
        assert torch.equal(buffer, efficient.buffers[name]), name
