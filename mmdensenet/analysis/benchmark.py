"""Measuring our DenseNet against torchvision's and mmpretrain's: train and inference speed, memory.

Every variant (implementation x plain/memory-efficient x memory format x AMP x torch.compile) runs
the same classifier (backbone, global average pooling, linear head) with the same threads, device,
batch, image size and dtype, each in a process of its own, as a training run holds its model.
``measure_speed`` runs the variants in rounds: each round starts one fresh process per variant in
turn (the first variant one later each round), so that changes in the machine's load fall on all of
them alike. Each process times its first train step (with torch.compile, the compilation) on its
own, runs ``warmup`` untimed steps for its allocator to settle, then times ``iters`` train steps
(SGD), and then the same for inference: each step on a wall clock between device synchronisations.
The timed steps of all rounds give the median, the fastest and the spread (interquartile range).
``measure_memory`` takes the peak memory of a train step and the memory the model keeps between
steps (at rest), both beyond the tensors of the model, gradients, optimizer and batch: on CPU the
resident set size, with glibc told to hand freed blocks back to the system at once; on CUDA the
memory allocated. ``max_batch`` finds the largest batch whose train steps fit on the card:
doubling, then bisection.

Every job runs through ``in_child``, in a fresh ``python -m mmdensenet.analysis.benchmark JOB``
that imports this same mmdensenet and prints its results as JSON.
"""

import ctypes
import ctypes.util
import gc
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
    rounds: int = 1


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

    def tensor_bytes(self) -> int:
        """Bytes of the model's parameters and buffers, their gradients, the optimizer's state and the batch."""
        tensors = [*self.model.parameters(), *self.model.buffers(), self.images, self.labels]
        tensors += [p.grad for p in self.model.parameters() if p.grad is not None]
        tensors += [t for state in self.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
        return sum(storages.values())


def _minor_faults() -> int:
    """Minor page faults of this process so far (``minflt`` of ``/proc/self/stat``)."""
    fields = Path('/proc/self/stat').read_text().rsplit(')', 1)[1].split()
    return int(fields[7])


def time_steps(variant: Variant, setting: Setting) -> dict:
    """Step times of one variant, alone in this process: train steps, then inference.

    For each kind, the first step apart, ``setting.warmup`` untimed steps, then ``setting.iters``
    timed ones; also the median minor page faults of a timed train step (pages the process maps
    afresh: the kernel zeroes each on first touch).
    """
    runner = _Runner(variant, setting)
    result: dict = {}
    for kind, step in (('train', runner.train_step), ('infer', runner.infer)):
        result[f'{kind}_first_step_s'] = runner.timed(step)
        for _ in range(setting.warmup):
            step()
        seconds, faults = [], []
        for _ in range(setting.iters):
            before = _minor_faults()
            seconds.append(runner.timed(step))
            faults.append(_minor_faults() - before)
        result[f'{kind}_step_s'] = seconds
        if kind == 'train':
            result['train_page_faults'] = statistics.median(faults)
    return result


def quartiles(seconds: Sequence[float]) -> tuple[float, float, float]:
    """The first quartile, the median and the third quartile of step times (all the time of one step alone)."""
    if len(seconds) < 2:
        return (seconds[0],) * 3
    q1, median, q3 = statistics.quantiles(seconds, n=4, method='inclusive')
    return q1, median, q3


def summarise(kind: str, seconds: Sequence[float], batch_size: int) -> dict:
    """Images per second of the median and of the fastest step, and the spread of the step times.

    The spread is the interquartile range over the median. On a shared machine other processes
    only ever add time, so the fastest step is the least disturbed (timeit's documentation argues
    so); the median is what a run sees.
    """
    q1, median, q3 = quartiles(seconds)
    return {
        f'{kind}_images_per_s_median': batch_size / median,
        f'{kind}_images_per_s': batch_size / min(seconds),
        f'{kind}_spread': (q3 - q1) / median,
    }


def measure_speed(
    variants: Sequence[Variant], setting: Setting, on_child: Optional[Callable[[int, Variant], None]] = None
) -> list[dict]:
    """Train and inference speed of every variant, each in processes of its own, in ``setting.rounds`` rounds.

    Each round runs :func:`time_steps` in a fresh process per variant, in turns, the first variant
    one later each round; ``on_child(round, variant)`` hears of each process before it starts. The
    results hold every timed step (``train_step_s``, ``infer_step_s``), their :func:`summarise`, the
    median page faults of a train step and the first steps of the first round (compiling from cold).
    """
    runs: list[list[dict]] = [[] for _ in variants]
    for round_index in range(setting.rounds):
        for offset in range(len(variants)):
            i = (round_index + offset) % len(variants)
            if on_child is not None:
                on_child(round_index, variants[i])
            runs[i].append(in_child('speed', variants[i], setting))
    results = []
    for variant_runs in runs:
        result = {key: variant_runs[0][key] for key in ('train_first_step_s', 'infer_first_step_s')}
        result['train_page_faults'] = statistics.median(r['train_page_faults'] for r in variant_runs)
        for kind in ('train', 'infer'):
            seconds = [t for r in variant_runs for t in r[f'{kind}_step_s']]
            result.update(summarise(kind, seconds, setting.batch_size), **{f'{kind}_step_s': seconds})
        results.append(result)
    return results


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


def _memory(device: torch.device) -> int:
    """Bytes in use: on CUDA allocated, on CPU resident (freed blocks handed back first)."""
    if device.type == 'cuda':
        return torch.cuda.memory_allocated(device)
    _release_freed_memory_at_once()
    return _process_memory('VmRSS')


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _release_freed_memory_at_once()
        Path('/proc/self/clear_refs').write_text('5')  # resets the peak resident set size


def _peak_memory(device: torch.device) -> int:
    return torch.cuda.max_memory_allocated(device) if device.type == 'cuda' else _process_memory('VmHWM')


def measure_memory(variant: Variant, setting: Setting) -> dict:
    """Memory of train steps beyond the tensors of the model, its gradients, the optimizer and the batch.

    At rest is what the model keeps between steps beyond those tensors: the memory the process
    frees when the model goes, less their bytes (the libraries' caches, such as oneDNN's kernels,
    stay and count in neither). The peak is the most a step holds above the resting process, plus
    what the model keeps. Needs a process of its own (on CPU it also changes how glibc allocates).
    """
    runner = _Runner(variant, setting)
    device = runner.device
    _memory(device)  # on CPU, glibc hands freed blocks back from here on
    runner.train_step()  # creates the gradients, the optimizer's state and the libraries' caches
    _reset_peak_memory(device)
    runner.train_step()
    peak, rest, tensors = _peak_memory(device), _memory(device), runner.tensor_bytes()
    del runner
    gc.collect()
    kept = rest - _memory(device) - tensors
    return dict(train_memory_mb=(peak - rest + kept) / 2**20, rest_memory_mb=kept / 2**20)


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


def in_child(what: str, variant: Variant, setting: Setting) -> Union[dict, bool]:
    """Runs the job ``what`` ('speed', 'memory' or 'fits') for ``variant`` in a fresh process and returns its result."""
    job = json.dumps(dict(what=what, variant=asdict(variant), setting=asdict(setting)))
    command = [sys.executable, '-m', __name__, job]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=PACKAGE_ROOT)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ['no output'])[-1]
        raise ToolError(f'{what} of {variant.name} failed: {last_line}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(
    variants: Sequence[Variant], setting: Setting, on_child: Optional[Callable[[int, Variant], None]] = None
) -> Iterator[tuple[Variant, dict]]:
    """Each variant with its speed (:func:`measure_speed`) and its memory (in a process of its own)."""
    for variant, speed in zip(variants, measure_speed(variants, setting, on_child)):
        yield variant, {**speed, **in_child('memory', variant, setting)}


def max_batch(
    variant: Variant, setting: Setting, limit: int, on_try: Optional[Callable[[int, bool], None]] = None
) -> int:
    """The largest batch from 1 to ``limit`` whose train steps fit, each batch tried in a process of its own.

    The search starts at ``setting.batch_size``; ``on_try(batch_size, fits)`` hears of each try.
    """

    def fits(batch_size: int) -> bool:
        fit = in_child('fits', variant, replace(setting, batch_size=batch_size))
        if on_try is not None:
            on_try(batch_size, fit)
        return fit

    return largest_fitting(fits, setting.batch_size, limit)


def _run_job(job: str) -> None:
    """The child's side of ``in_child``: prints the result of the job as one line of JSON."""
    spec = json.loads(job)
    setting, variant = Setting(**spec['setting']), Variant(**spec['variant'])
    torch.set_num_threads(setting.threads)
    jobs = {'speed': time_steps, 'memory': measure_memory, 'fits': train_steps_fit}
    print(json.dumps(jobs[spec['what']](variant, setting)))


if __name__ == '__main__':
    _run_job(sys.argv[1])
