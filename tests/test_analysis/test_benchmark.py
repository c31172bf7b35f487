"""mmdensenet.analysis.benchmark on tiny nets on CPU: variants, classifiers, measuring, the batch search.

No timing assertions: the numbers are only checked to be there, positive and finite, and the
statistics on hand-made step times.
"""

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mmdensenet.analysis import benchmark
from mmdensenet.analysis.benchmark import (
    NUM_CLASSES,
    Setting,
    Variant,
    build_classifier,
    has_counterparts,
    in_child,
    largest_fitting,
    max_batch,
    measure_speed,
    quartiles,
    summarise,
    time_steps,
    train_steps_fit,
    variants,
)
from mmdensenet.errors import ToolError

TINY_ARCH = dict(growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)  # ImageNet stem: all three build it
TINY_CIFAR_ARCH = dict(growth_rate=4, depths=(1, 1, 1), init_channels=8, stem='cifar')
TINY = Setting(backbone=dict(arch=TINY_ARCH), device='cpu', batch_size=2, img_size=32, threads=1, warmup=1, iters=1)


def test_counterparts_need_the_published_design() -> None:
    assert has_counterparts('121') and has_counterparts(TINY_ARCH)
    assert not has_counterparts(TINY_CIFAR_ARCH)
    assert not has_counterparts(dict(TINY_ARCH, bn_size=0))
    assert not has_counterparts(dict(TINY_ARCH, compression=1.0))


def test_variants_are_every_implementation_plain_and_memory_efficient_per_setup() -> None:
    names = [v.name for v in variants('121', ['mmdensenet', 'torchvision'], False, False, False)]
    assert names == [
        'mmdensenet plain',
        'mmdensenet memory_efficient',
        'torchvision plain',
        'torchvision memory_efficient',
    ]
    everything = list(variants('121', ['mmdensenet', 'torchvision', 'mmpretrain'], True, True, True))
    assert len(everything) == len(set(everything)) == 3 * 2 * 8  # implementations x modes x set-ups
    setups = [(v.channels_last, v.amp, v.compiled) for v in everything[::6]]
    assert setups == [(c, a, p) for p in (False, True) for a in (False, True) for c in (False, True)]
    assert everything[-1] == Variant('mmpretrain', True, channels_last=True, amp=True, compiled=True)


def test_a_net_without_counterparts_has_only_our_variants() -> None:
    selected = list(variants(TINY_CIFAR_ARCH, ['mmdensenet', 'torchvision', 'mmpretrain'], False, True, False))
    assert [v.name for v in selected] == [
        'mmdensenet plain',
        'mmdensenet memory_efficient',
        'mmdensenet plain amp',
        'mmdensenet memory_efficient amp',
    ]
    assert list(variants(TINY_CIFAR_ARCH, ['torchvision'], False, False, False)) == []


def test_classifiers_of_every_implementation_are_the_same_net() -> None:
    images = torch.randn(2, 3, 32, 32)
    sizes = {}
    for implementation in ('mmdensenet', 'torchvision', 'mmpretrain'):
        for memory_efficient in (False, True):
            model = build_classifier(Variant(implementation, memory_efficient), dict(arch=TINY_ARCH))
            assert model(images).shape == (2, NUM_CLASSES)
            sizes[implementation, memory_efficient] = sum(p.numel() for p in model.parameters())
    assert len(set(sizes.values())) == 1, sizes


def test_our_classifier_takes_the_backbone_config() -> None:
    backbone = dict(arch=TINY_CIFAR_ARCH, frozen_stages=1)
    model = build_classifier(Variant('mmdensenet', memory_efficient=True), backbone)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, NUM_CLASSES)
    assert model.backbone.frozen_stages == 1
    assert all(layer.memory_efficient for layer in model.backbone.modules() if hasattr(layer, 'memory_efficient'))


def test_steps_of_one_variant_alone() -> None:
    result = time_steps(Variant('mmdensenet', memory_efficient=True), replace(TINY, iters=3))
    assert set(result) == {f'{kind}_{key}' for kind in ('train', 'infer') for key in ('first_step_s', 'step_s')} | {
        'train_page_faults'
    }
    for kind in ('train', 'infer'):
        assert len(result[f'{kind}_step_s']) == 3
        assert all(math.isfinite(t) and t > 0 for t in [result[f'{kind}_first_step_s'], *result[f'{kind}_step_s']])
    assert result['train_page_faults'] >= 0


def test_quartiles_and_summary_of_step_times() -> None:
    assert quartiles([2.0]) == (2.0, 2.0, 2.0)
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    summary = summarise('train', [1.0, 2.0, 3.0, 4.0, 5.0], batch_size=6)
    assert summary == dict(train_images_per_s_median=2.0, train_images_per_s=6.0, train_spread=2 / 3)
    assert summarise('infer', [0.5], batch_size=1)['infer_spread'] == 0


def test_each_variant_runs_in_processes_of_its_own_in_rounds_and_turns() -> None:
    selected = [Variant('mmdensenet', memory_efficient=True), Variant('torchvision')]
    children = []
    results = measure_speed(selected, replace(TINY, iters=2, rounds=2), lambda *child: children.append(child))
    assert children == [(0, selected[0]), (0, selected[1]), (1, selected[1]), (1, selected[0])]
    for result in results:
        for kind in ('train', 'infer'):
            assert len(result[f'{kind}_step_s']) == 4  # 2 rounds of 2 timed steps
            assert result[f'{kind}_images_per_s'] >= result[f'{kind}_images_per_s_median'] > 0
            assert result[f'{kind}_spread'] >= 0 and result[f'{kind}_first_step_s'] > 0
        assert result['train_page_faults'] >= 0


def test_child_measures_memory_with_the_parents_mmdensenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory in a child process started from a folder whose own mmdensenet would not import."""
    decoy = tmp_path / 'mmdensenet'
    decoy.mkdir()
    (decoy / '__init__.py').write_text("raise ImportError('the decoy mmdensenet of the working folder')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('PYTHONPATH', raising=False)
    result = in_child('memory', Variant('mmdensenet'), TINY)
    assert set(result) == {'train_memory_mb', 'rest_memory_mb'}
    assert math.isfinite(result['train_memory_mb']) and result['train_memory_mb'] > 0


def test_a_failing_child_is_one_line_naming_the_job() -> None:
    """A net that cannot run on 1 pixel: the child's last line of error."""
    with pytest.raises(ToolError, match=r'^speed of torchvision plain failed: \w+Error: '):
        in_child('speed', Variant('torchvision'), replace(TINY, img_size=1))


def test_train_steps_fit_a_tiny_net() -> None:
    assert train_steps_fit(Variant('mmdensenet', memory_efficient=True), TINY)
    assert train_steps_fit(Variant('torchvision', channels_last=True, amp=True), TINY)


@pytest.mark.parametrize(
    'error',
    [
        torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB'),
        RuntimeError('CUDA error: out of memory'),  # as cuDNN and cuBLAS report a failed allocation
    ],
)
def test_running_out_of_memory_means_not_fitting(monkeypatch: pytest.MonkeyPatch, error: RuntimeError) -> None:
    def train_step(runner) -> None:
        raise error

    monkeypatch.setattr(benchmark._Runner, 'train_step', train_step)
    assert not train_steps_fit(Variant('mmdensenet'), TINY)


def test_other_failures_are_no_answer() -> None:
    with pytest.raises(RuntimeError, match='too small'):
        train_steps_fit(Variant('mmdensenet'), replace(TINY, img_size=1))


@pytest.mark.parametrize('start', [1, 16, 5000])
@pytest.mark.parametrize('largest', [0, 1, 2, 3, 31, 64, 100, 1000, 4095, 4096, 10_000])
def test_batch_search_finds_the_boundary_in_few_tries(start: int, largest: int) -> None:
    """Also where none fits (0), all fit up to the limit (4096, 10 000) and the start is above the answer."""
    limit, tried = 4096, []
    found = largest_fitting(lambda n: tried.append(n) or n <= largest, start, limit)
    assert found == min(largest, limit)
    assert len(tried) == len(set(tried)) <= 2 * math.ceil(math.log2(limit)) + 2
    assert all(1 <= n <= limit for n in tried)


def allocates(megabytes: int) -> bool:
    """Whether a Python process with 256 MiB of address space can allocate ``megabytes`` MiB more."""
    code = (
        'import resource, sys\n'
        'resource.setrlimit(resource.RLIMIT_AS, (256 << 20, 256 << 20))\n'
        'bytearray(int(sys.argv[1]) << 20)\n'
    )
    result = subprocess.run([sys.executable, '-S', '-c', code, str(megabytes)], capture_output=True, text=True)
    assert result.returncode == 0 or 'MemoryError' in result.stderr, result.stderr
    return result.returncode == 0


def test_batch_search_with_out_of_memory_in_child_processes() -> None:
    """The search as the tool runs it on CUDA: each size tried in a fresh process that may run out of memory."""
    found = largest_fitting(allocates, 16, 1024)
    assert 64 < found < 256
    assert allocates(found) and not allocates(found + 1)


def test_batch_search_runs_each_try_in_a_child_process() -> None:
    """On CPU, where these batches fit: each try a child process that trains two steps."""
    tries = []
    assert max_batch(Variant('mmdensenet', memory_efficient=True), TINY, 4, lambda *t: tries.append(t)) == 4
    assert tries == [(2, True), (4, True)]
