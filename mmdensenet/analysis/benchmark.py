"""Measuring our DenseNet against torchvision's and mmpretrain's: train and inference speed, peak memory.

Every variant (implementation x plain/memory-efficient x memory format x AMP x torch.compile) runs
the same classifier (backbone, global average pooling, linear head) with the same threads, device,
batch, image size and dtype. ``measure_speed`` times train steps (SGD) and inference of all
variants in turns in one process, so that changes in the machine's load hit them alike: each step
on a wall clock between device synchronisations, the first step (with torch.compile, the
compilation) on its own, then the fastest and the median of the timed steps. ``measure_memory``
takes the peak memory of a train step above the level left by a warm-up step (weights, gradients,
optimizer state): on CPU the peak resident set size, with glibc told to hand freed blocks back to
the system at once; on CUDA ``max_memory_allocated``. ``max_batch`` finds the largest batch whose
train steps fit on the card: doubling, then bisection.

Peak memory and each try of the batch search need a process of their own: ``measure`` and
``max_batch`` run their jobs through ``in_child``, in a fresh ``python -m mmdensenet.analysis.benchmark
JOB`` that imports this same mmdensenet and prints its results as JSON.
"""

import ctypes
import ctypes.util
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ToolError
from ..models import DenseNet
from ..registry import MODELS

IMPLEMENTATIONS = ('mmdensenet', 'torchvision', 'mmpretrain')
NUM_CLASSES = 1000
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
# The folder that holds this mmdensenet package: a child process started there imports it, whatever the cwd holds.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Variant:
    """One model set-up to benchmark."""

    implementation: str
    memory_efficient: bool = False
    channels_last: bool = False
    amp: bool = False
    compiled: bool = False

    @property
    def name(self) -> str:
        parts = [self.implementation, 'memory_efficient' if self.memory_efficient else 'plain']
        parts += ['channels_last'] * self.channels_last + ['amp'] * self.amp + ['compiled'] * self.compiled
        return ' '.join(parts)


@dataclass(frozen=True)
class Setting:
    """What every variant shares."""

    backbone: dict
    device: str
    batch_size: int
    img_size: int
    threads: int
    warmup: int
    iters: int
    compile_backend: str = 'inductor'


class _Classifier(nn.Module):
    """A backbone returning a tuple of feature maps, pooled and classified from the last one."""

    def __init__(self, backbone: nn.Module, channels: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(channels, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.backbone(x)[-1], 1), 1))


def has_counterparts(arch: Union[str, dict]) -> bool:
    """Whether torchvision and mmpretrain build ``arch``: ImageNet stem, bottleneck 4, compression 0.5."""
    setting = DenseNet.resolve_arch(arch)
    return setting['stem'] == 'imagenet' and setting['bn_size'] == 4 and setting['compression'] == 0.5


def variants(
    arch: Union[str, dict], implementations: Sequence[str], channels_last: bool, amp: bool, compiled: bool
) -> Iterator[Variant]:
    """Each of ``implementations`` that builds ``arch``, plain and memory-efficient, in the requested set-ups."""
    if not has_counterparts(arch):
        implementations = [i for i in implementations if i == 'mmdensenet']
    setups = [Variant('')]
    if channels_last:
        setups.append(Variant('', channels_last=True))
    if amp:
        setups += [replace(v, amp=True) for v in setups]
    if compiled:
        setups += [replace(v, compiled=True) for v in setups]
    for setup in setups:
        for implementation in implementations:
            for memory_efficient in (False, True):
                yield replace(setup, implementation=implementation, memory_efficient=memory_efficient)


def build_classifier(variant: Variant, backbone_cfg: dict) -> nn.Module:
    """The classifier of ``variant`` with ``NUM_CLASSES`` logits; ``backbone_cfg`` is our backbone's config."""
    setting = DenseNet.resolve_arch(backbone_cfg.get('arch', '121'))
    growth_rate, depths, init_channels = setting['growth_rate'], tuple(setting['depths']), setting['init_channels']
    memory_efficient = variant.memory_efficient
    if variant.implementation == 'torchvision':
        from torchvision.models import DenseNet as TorchvisionDenseNet

        return TorchvisionDenseNet(growth_rate, depths, init_channels, memory_efficient=memory_efficient)
    if variant.implementation == 'mmpretrain':
        from mmpretrain.models.backbones import DenseNet as MMPretrainDenseNet

        arch = dict(growth_rate=growth_rate, depths=depths, init_channels=init_channels)
        backbone = MMPretrainDenseNet(arch, memory_efficient=memory_efficient)
        return _Classifier(backbone, backbone.transitions[-1][0].num_features)  # the final norm's
    backbone = MODELS.build(dict(backbone_cfg, type='mmdensenet.DenseNet', memory_efficient=memory_efficient))
    return _Classifier(backbone, backbone.out_channels[-1])


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class _Runner:
    """A variant's model, batch and optimizer, with one train step and one inference pass."""

    def __init__(self, variant: Variant, setting: Setting) -> None:
        torch.manual_seed(0)
        self.device = torch.device(setting.device)
        memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
        self.model = build_classifier(variant, setting.backbone).to(self.device, memory_format=memory_format)
        self.forward = torch.compile(self.model, backend=setting.compile_backend) if variant.compiled else self.model
        size = (setting.batch_size, 3, setting.img_size, setting.img_size)
        self.images = torch.randn(size, device=self.device).contiguous(memory_format=memory_format)
        self.labels = torch.randint(0, NUM_CLASSES, (setting.batch_size,), device=self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        amp_dtype = torch.float16 if self.device.type == 'cuda' else torch.bfloat16
        self.autocast = torch.autocast(self.device.type, dtype=amp_dtype) if variant.amp else nullcontext()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=variant.amp and self.device.type == 'cuda')

    def train_step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss = F.cross_entropy(self.forward(self.images), self.labels)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        _synchronize(self.device)

    def infer(self) -> None:
        self.model.eval()
        with torch.no_grad(), self.autocast:
            self.forward(self.images)
        _synchronize(self.device)

    def timed(self, step: Callable[[], None]) -> float:
        """Seconds of one step, from a synchronised start to its synchronised end."""
        _synchronize(self.device)
        start = time.perf_counter()
        step()
        return time.perf_counter() - start


def _interleaved_seconds(
    runners: Sequence[_Runner], step: Callable[[_Runner], Callable[[], None]], warmup: int, iters: int
) -> list[list[float]]:
    """The times of ``iters`` steps of each runner after ``warmup`` untimed ones.

    The runners take turns (starting one later each round) so that load changes hit all alike.
    """
    times: list[list[float]] = [[] for _ in runners]
    for round_index in range(warmup + iters):
        for offset in range(len(runners)):
            i = (round_index + offset) % len(runners)
            seconds = runners[i].timed(step(runners[i]))
            if round_index >= warmup:
                times[i].append(seconds)
    return times


def _process_memory(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, in bytes."""
    status = Path('/proc/self/status').read_text()
    return int(re.search(rf'{field}:\s+(\d+) kB', status).group(1)) * 1024


def _release_freed_memory_at_once() -> None:
    """Makes glibc map every block of 64 KiB or more on its own and unmap it when freed.

    Otherwise freed tensors stay in the heap and the resident set size overstates what is live.
    """
    libc = ctypes.CDLL(ctypes.util.find_library('c'))
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 16)
    libc.malloc_trim(0)


def _peak_train_memory(runner: _Runner) -> int:
    """Bytes a train step needs above the level left by a warm-up step."""
    if runner.device.type == 'cuda':
        runner.train_step()  # allocates gradients and optimizer state
        torch.cuda.reset_peak_memory_stats(runner.device)
        before = torch.cuda.memory_allocated(runner.device)
        runner.train_step()
        return torch.cuda.max_memory_allocated(runner.device) - before
    _release_freed_memory_at_once()
    runner.train_step()
    _release_freed_memory_at_once()
    Path('/proc/self/clear_refs').write_text('5')  # resets the peak resident set size
    before = _process_memory('VmRSS')
    runner.train_step()
    return _process_memory('VmHWM') - before


def measure_speed(variants: Sequence[Variant], setting: Setting) -> list[dict]:
    """Train-step and inference throughput of every variant, measured in turns in one process.

    The first step of each kind is timed on its own (it compiles a compiled variant); the images
    per second come from the fastest of the timed steps (on a shared machine other processes only
    ever add time, as timeit's documentation argues) and from their median.
    """
    runners = [_Runner(variant, setting) for variant in variants]
    results: list[dict] = [{} for _ in runners]
    for kind, step in (('train', lambda r: r.train_step), ('infer', lambda r: r.infer)):
        for runner, result in zip(runners, results):
            result[f'{kind}_first_step_s'] = runner.timed(step(runner))
        for times, result in zip(_interleaved_seconds(runners, step, setting.warmup, setting.iters), results):
            result[f'{kind}_images_per_s'] = setting.batch_size / min(times)
            result[f'{kind}_images_per_s_median'] = setting.batch_size / statistics.median(times)
    return results


def measure_memory(variant: Variant, setting: Setting) -> dict:
    """Peak train-step memory; needs a process of its own (on CPU it also changes how glibc allocates)."""
    return dict(train_memory_mb=_peak_train_memory(_Runner(variant, setting)) / 2**20)


def train_steps_fit(variant: Variant, setting: Setting) -> bool:
    """Whether two train steps (the second with optimizer state) run without running out of memory.

    Needs a process of its own, so that a failed attempt leaves no memory behind.
    """
    try:
        runner = _Runner(variant, setting)
        runner.train_step()
        runner.train_step()
    except RuntimeError as exc:  # torch.OutOfMemoryError, or a library's failed allocation (cuDNN, cuBLAS)
        if isinstance(exc, torch.OutOfMemoryError) or 'out of memory' in str(exc).lower():
            return False
        raise
    return True


def largest_fitting(fits: Callable[[int], bool], start: int, limit: int) -> int:
    """The largest ``n`` in ``1..limit`` for which ``fits(n)``, or 0 if none; ``fits`` must be monotone.

    Doubles (or halves) from ``start`` until it knows a size that fits and one that does not, then
    bisects between them: about twice the logarithm of the answer in calls.
    """
    good, bad = 0, limit + 1  # the largest size known to fit (0 trivially), the smallest known not to
    n = min(max(start, 1), limit)
    while bad - good > 1:
        if fits(n):
            good = n
        else:
            bad = n
        if bad > limit:  # none too large yet
            n = min(2 * good, limit)
        elif good == 0:  # none fits yet
            n = bad // 2
        else:
            n = (good + bad) // 2
    return good


def in_child(what: str, variants: Sequence[Variant], setting: Setting) -> list:
    """Runs the job ``what`` ('speed', 'memory' or 'fits') for ``variants`` in a fresh process: a result each."""
    job = json.dumps(dict(what=what, variants=[asdict(v) for v in variants], setting=asdict(setting)))
    command = [sys.executable, '-m', __name__, job]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=PACKAGE_ROOT)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ['no output'])[-1]
        raise ToolError(f'{what} of {", ".join(v.name for v in variants)} failed: {last_line}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(variants: Sequence[Variant], setting: Setting) -> Iterator[tuple[Variant, dict]]:
    """Each variant with its speed (all measured in turns in one process) and peak memory (in a process of its own)."""
    for variant, speed in zip(variants, in_child('speed', variants, setting)):
        yield variant, {**speed, **in_child('memory', [variant], setting)[0]}


def max_batch(
    variant: Variant, setting: Setting, limit: int, on_try: Optional[Callable[[int, bool], None]] = None
) -> int:
    """The largest batch from 1 to ``limit`` whose train steps fit, each batch tried in a process of its own.

    The search starts at ``setting.batch_size``; ``on_try(batch_size, fits)`` hears of each try.
    """

    def fits(batch_size: int) -> bool:
        fit = in_child('fits', [variant], replace(setting, batch_size=batch_size))[0]
        if on_try is not None:
            on_try(batch_size, fit)
        return fit

    return largest_fitting(fits, setting.batch_size, limit)


def _run_job(job: str) -> None:
    """The child's side of ``in_child``: prints the results of the job as one line of JSON."""
    spec = json.loads(job)
    setting = Setting(**spec['setting'])
    torch.set_num_threads(setting.threads)
    selected = [Variant(**v) for v in spec['variants']]
    # The compiled variants share forward code (our _Classifier's, torchvision's DenseNet's), compiled once
    # for training and once for inference each: past torch's limit per code (8), it would run eager unsaid.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 2 * len(selected))
    if spec['what'] == 'speed':
        print(json.dumps(measure_speed(selected, setting)))
    elif spec['what'] == 'memory':
        print(json.dumps([measure_memory(variant, setting) for variant in selected]))
    else:
        print(json.dumps([train_steps_fit(variant, setting) for variant in selected]))


if __name__ == '__main__':
    _run_job(sys.argv[1])
