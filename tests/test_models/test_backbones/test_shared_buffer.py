"""The shared buffer's memory on CPU: a scratch kept between calls, never memory anything still uses."""

import gc
import threading

import pytest
import torch
from torch import nn

from mmdensenet.models import DenseNet
from mmdensenet.models.backbones import _shared_buffer

TINY = dict(growth_rate=8, depths=(2, 2, 2, 2), init_channels=16)


def twins(**kwargs) -> tuple[DenseNet, DenseNet]:
    """A plain and a memory-efficient model with the same weights, in train mode."""
    plain = DenseNet(TINY, out_indices=(0, 1, 2, 3), **kwargs)
    efficient = DenseNet(TINY, out_indices=(0, 1, 2, 3), memory_efficient=True, **kwargs)
    efficient.load_state_dict(plain.state_dict())
    return plain.train(), efficient.train()


def loss(outputs: tuple[torch.Tensor, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return sum((o * torch.randn(o.shape, generator=generator)).sum() for o in outputs)


def assert_same_state(plain: nn.Module, efficient: nn.Module) -> None:
    """Bitwise equal gradients and buffers (running statistics)."""
    grads = dict(efficient.named_parameters())
    for name, param in plain.named_parameters():
        assert torch.equal(grads[name].grad, param.grad), name
    buffers = dict(efficient.named_buffers())
    for name, buffer in plain.named_buffers():
        assert torch.equal(buffers[name], buffer), name


def first_block_storages(model: DenseNet) -> list[int]:
    """Records the address of the first dense block's output at every call (not the output itself)."""
    addresses = []
    model.stages[0].register_forward_hook(lambda module, args, out: addresses.append(out.data_ptr()))
    return addresses


def test_two_forwards_then_backward_of_both_equal_the_plain_mode() -> None:
    """Gradient accumulation over a double forward: the second forward must not reuse the first's buffer."""
    plain, efficient = twins()
    addresses = first_block_storages(efficient)
    x1, x2 = torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)
    for model in (plain, efficient):
        first, second = model(x1), model(x2)
        (loss(first, 1) + loss(second, 2)).backward()
        for a, b in zip(first, second):
            assert not torch.equal(a, b)
    assert addresses[0] != addresses[1]
    assert_same_state(plain, efficient)


def test_a_retained_graph_keeps_its_buffer_through_later_steps() -> None:
    plain, efficient = twins()
    x1, x2 = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    for model in (plain, efficient):
        retained = loss(model(x1), 1)
        retained.backward(retain_graph=True)
        loss(model(x2), 2).backward()  # a whole step while the first graph lives
        retained.backward()
    assert_same_state(plain, efficient)


def test_the_scratch_is_lent_to_one_caller_at_a_time_and_keeps_the_larger_chunk() -> None:
    scratch = _shared_buffer._Scratch()
    with scratch.lease(100) as first, scratch.lease(50) as second:  # a second caller while the first holds it
        assert first.numel() >= 100 and second.numel() >= 50
        addresses = first.data_ptr(), second.data_ptr()
        assert addresses[0] != addresses[1]
    with scratch.lease(80) as again:
        assert again.data_ptr() == addresses[0]  # the larger chunk was kept
    with scratch.lease(200) as larger:
        assert larger.numel() >= 200 and larger.data_ptr() not in addresses


def test_every_bn_relu_output_of_every_step_goes_to_the_same_kept_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    addresses = []
    for name in ('_norm_relu', '_replay_norm_relu'):
        original = getattr(_shared_buffer, name)

        def recorded(norm, x, *args, original=original):
            addresses.append(args[-1].data_ptr())  # the memory it writes into
            return original(norm, x, *args)

        monkeypatch.setattr(_shared_buffer, name, recorded)
    _, efficient = twins()
    for _ in range(2):
        loss(efficient(torch.randn(2, 3, 64, 64)), 1).backward()
    with torch.no_grad():
        efficient(torch.randn(2, 3, 64, 64))
    assert len(addresses) == (2 * 2 + 1) * 8 * 2  # forward and replay in 2 steps, 1 inference; 8 layers of 2
    assert set(addresses) == {addresses[0]}


def test_the_scratch_goes_with_the_last_model() -> None:
    model = DenseNet(TINY, memory_efficient=True).train()
    loss(model(torch.randn(2, 3, 64, 64)), 1).backward()
    kept = _shared_buffer._shared_scratch()
    assert kept is not None and kept._kept is not None
    del model, kept
    gc.collect()
    assert _shared_buffer._shared_scratch() is None


def test_an_output_a_caller_holds_is_never_overwritten() -> None:
    _, efficient = twins()
    held = []
    efficient.stages[0].register_forward_hook(lambda module, args, out: held.append(out))
    with torch.no_grad():
        efficient(torch.randn(2, 3, 64, 64))
        copy = held[0].clone()
        efficient(torch.randn(2, 3, 64, 64))
    assert held[0].data_ptr() != held[1].data_ptr()
    assert torch.equal(held[0], copy)


def test_inference_from_threads_at_once_equals_inference_one_at_a_time() -> None:
    model = DenseNet(TINY, out_indices=(0, 1, 2, 3), memory_efficient=True).eval()
    inputs = [torch.randn(2, 3, 64, 64) for _ in range(4)]
    with torch.no_grad():
        expected = [model(x) for x in inputs]
    results = {}

    def infer(index: int) -> None:
        with torch.no_grad():
            for _ in range(5):
                results[index] = model(inputs[index])

    threads = [threading.Thread(target=infer, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, outputs in enumerate(expected):
        for a, b in zip(outputs, results[index]):
            assert torch.equal(a, b)
