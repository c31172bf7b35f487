"""The backbone on a CUDA GPU: ``python -m pytest -m cuda`` (skipped without one).

On CUDA the two modes are not bitwise equal: cuDNN picks convolution algorithms per call and
the modes sum gradients in other orders. Each is judged by its distance from a float64 run of
the same weights (see precision_checks). TF32 is switched off in fp32 runs: it moves a train
step's gradients by about 0.2 relative, in both modes alike, and would hide real differences.
"""

from collections.abc import Iterator
from typing import Optional

import pytest
import torch

from mmdensenet.models import DenseNet
from mmdensenet.models.backbones.densenet import BlockStrategy
from tests.test_models.test_backbones.precision_checks import assert_within_plain_rounding, train_step, twins

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]

ARCH = dict(growth_rate=8, depths=(2, 3, 2, 2), init_channels=16)


@pytest.fixture(autouse=True)
def _true_fp32() -> Iterator[None]:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize('amp_dtype', [None, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('kwargs', [dict(), dict(frozen_stages=1), dict(norm_eval=True)])
def test_memory_efficient_matches_plain_within_rounding(
    amp_dtype: Optional[torch.dtype], memory_format: torch.memory_format, kwargs: dict
) -> None:
    models = [m.cuda() for m in twins(ARCH, memory_format, **kwargs)]
    x = torch.randn(16, 3, 64, 64, device='cuda').contiguous(memory_format=memory_format)
    plain, efficient = (train_step(m, x, amp_dtype) for m in models[:2])
    if amp_dtype is not None:
        assert all(o.dtype == amp_dtype for o in efficient.outputs)
    assert_within_plain_rounding(plain, efficient, train_step(models[2], x.double()))


@pytest.mark.parametrize('amp', [False, True])
@pytest.mark.parametrize('memory_efficient', [False, True])
def test_inference_matches_the_autograd_path(memory_efficient: bool, amp: bool) -> None:
    model = DenseNet(ARCH, out_indices=(0, 1, 2, 3), memory_efficient=memory_efficient).cuda().eval()
    x = torch.randn(4, 3, 64, 64, device='cuda')
    with torch.autocast('cuda', enabled=amp):
        with torch.no_grad():
            inferred = model(x)
        tracked = model(x)
    for a, b in zip(inferred, tracked):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b.detach())


@pytest.mark.parametrize(
    'memory_efficient, grad, expected',
    [
        (False, False, BlockStrategy.CONCATENATE),  # inference on CUDA concatenates in either mode
        (True, False, BlockStrategy.CONCATENATE),
        (False, True, BlockStrategy.CONCATENATE),
        (True, True, BlockStrategy.SHARED_BUFFER),
    ],
)
def test_strategy_on_cuda(strategies: list, memory_efficient: bool, grad: bool, expected: BlockStrategy) -> None:
    model = DenseNet(ARCH, memory_efficient=memory_efficient).cuda().train()
    with torch.set_grad_enabled(grad), torch.autocast('cuda'):
        model(torch.randn(2, 3, 64, 64, device='cuda'))
    assert strategies == [expected] * 4


def _peak_train_step_bytes(model: DenseNet, x: torch.Tensor) -> int:
    model(x)[-1].float().sum().backward()  # allocates the gradients
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.autocast('cuda'):
        out = model(x)[-1]
    out.float().sum().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def test_memory_efficient_needs_under_half_the_memory_under_amp() -> None:
    """DenseNet-121 under float16 autocast in channels_last: the shared buffer, not a fallback."""
    x = torch.randn(32, 3, 224, 224, device='cuda').contiguous(memory_format=torch.channels_last)
    peaks = []
    for memory_efficient in (False, True):
        model = DenseNet('121', memory_efficient=memory_efficient).cuda().to(memory_format=torch.channels_last)
        peaks.append(_peak_train_step_bytes(model.train(), x))
        del model
    assert peaks[1] < 0.5 * peaks[0], peaks
