"""Benchmark our DenseNet against torchvision's and mmpretrain's: speed and peak memory.

python tools/analysis_tools/benchmark.py [CONFIG] --batch-size 16 --img-size 224 --out benchmark.png

Every variant (implementation x plain/memory-efficient x memory format x AMP x torch.compile) runs
the same classifier (backbone, global average pooling, linear head) with the same threads, device,
batch, image size and dtype. One child process times train steps (SGD) and inference of all
variants in turns, so that changes in the machine's load hit them alike: each step on a wall clock
between device synchronisations, the first step (with torch.compile, the compilation) on its own,
then the fastest and the median of the timed steps. Each variant then measures in a process of its
own the peak memory of a train step above the level left by a warm-up step (weights, gradients,
optimizer state): on CPU the peak resident set size, with glibc told to hand freed blocks back to
the system at once; on CUDA ``max_memory_allocated``. On CUDA, ``--max-batch`` finds the largest
batch whose train steps fit on the card for each eager variant of the set-up asked for, trying each
batch in a process of its own: doubling, then bisection.
"""

import argparse
import ctypes
import ctypes.util
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError, reraise_as_tool_error
from mmdensenet.models import DenseNet
from mmdensenet.outputs import atomic_output, check_output
from mmdensenet.registry import MODELS

IMPLEMENTATIONS = ('mmdensenet', 'torchvision', 'mmpretrain')
NUM_CLASSES = 1000
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
# (warm-up, timed) steps by default: a CPU step of DenseNet-121 takes seconds, a GPU step milliseconds.
DEFAULT_STEPS = {'cpu': (2, 3), 'cuda': (5, 30)}
MAX_BATCH_LIMIT = 4096  # the largest batch --max-batch tries unless given a limit


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


def build_model(variant: Variant, backbone_cfg: dict) -> nn.Module:
    """The classifier of ``variant``; ``backbone_cfg`` is our backbone's config."""
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
        self.model = build_model(variant, setting.backbone).to(self.device, memory_format=memory_format)
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
    """Peak train-step memory; needs a process of its own."""
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


def _run_child(what: str, variants: Sequence[Variant], setting: Setting) -> list:
    job = json.dumps(dict(what=what, variants=[asdict(v) for v in variants], setting=asdict(setting)))
    result = subprocess.run([sys.executable, __file__, '--child', job], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ['no output'])[-1]
        raise ToolError(f'{what} of {", ".join(v.name for v in variants)} failed: {last_line}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def max_batch(variant: Variant, setting: Setting, limit: int) -> int:
    """The largest batch up to ``limit`` whose train steps fit, each batch tried in a process of its own."""

    def fits(batch_size: int) -> bool:
        fit = _run_child('fits', [variant], replace(setting, batch_size=batch_size))[0]
        print(f'    batch {batch_size}: {"fits" if fit else "out of memory"}', flush=True)
        return fit

    print(f'  {variant.name}: largest batch that trains', flush=True)
    return largest_fitting(fits, setting.batch_size, limit)


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


def machine_name(device: str, threads: int) -> str:
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    model = re.search(r'model name\s*:\s*(.+)', Path('/proc/cpuinfo').read_text())
    return f'{model.group(1).strip() if model else platform.processor()}, {threads} threads'


def _ratio(value: Optional[float], reference: Optional[float]) -> str:
    return f'{value / reference:.2f}' if value and reference else '-'


def format_table(results: list[tuple[Variant, dict]]) -> str:
    """A Markdown table; ratios (of the fastest steps) are against torchvision's plain model in the same set-up."""
    compiled = any(v.compiled for v, _ in results)
    searched = any('max_batch' in r for _, r in results)
    columns = ['variant', 'train img/s', 'median', 'infer img/s', 'median', 'train peak MB']
    columns += ['first train / infer step s'] * compiled + ['max batch'] * searched
    columns += ['train time x', 'infer time x', 'memory x']
    rows = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    by_variant = dict(results)
    for variant, r in results:
        reference = by_variant.get(replace(variant, implementation='torchvision', memory_efficient=False), {})
        cells = [
            variant.name,
            f'{r["train_images_per_s"]:.1f}',
            f'{r["train_images_per_s_median"]:.1f}',
            f'{r["infer_images_per_s"]:.1f}',
            f'{r["infer_images_per_s_median"]:.1f}',
            f'{r["train_memory_mb"]:.1f}',
        ]
        cells += [f'{r["train_first_step_s"]:.3g} / {r["infer_first_step_s"]:.3g}'] * compiled
        cells += [str(r.get('max_batch', '-'))] * searched
        cells += [
            _ratio(reference.get('train_images_per_s'), r['train_images_per_s']),
            _ratio(reference.get('infer_images_per_s'), r['infer_images_per_s']),
            _ratio(r['train_memory_mb'], reference.get('train_memory_mb')),
        ]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def plot(results: list[tuple[Variant, dict]], title: str, out_file: Path) -> None:
    """Horizontal bar charts: train and inference throughput, train peak memory; first train step, max batch."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [v.name for v, _ in results]
    colours = [f'C{IMPLEMENTATIONS.index(v.implementation)}' for v, _ in results]
    panels = [
        ('train_images_per_s', 'train step, images/s (higher is better)'),
        ('infer_images_per_s', 'inference, images/s (higher is better)'),
        ('train_memory_mb', 'train step peak memory, MB (lower is better)'),
    ]
    if any(v.compiled for v, _ in results):
        panels.append(('train_first_step_s', 'first train step (compiles), s'))
    if any('max_batch' in r for _, r in results):
        panels.append(('max_batch', 'largest batch that trains'))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.3 * len(panels), 1.2 + 0.35 * len(results)), sharey=True)
    for ax, (key, label) in zip(axes, panels):
        values = [r.get(key, 0) for _, r in results]
        labels = [f'{r[key]:.4g}' if isinstance(r.get(key), float) else str(r.get(key, '-')) for _, r in results]
        ax.barh(names, values, color=colours)
        ax.bar_label(ax.containers[0], labels=labels, fontsize=8)
        ax.set_xlabel(label)
    axes[0].invert_yaxis()  # first variant on top; the axes share y
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_file, format='png', dpi=100)
    plt.close(fig)


def backbone_config(config: Optional[str]) -> dict:
    """Our backbone's config from a model config, or DenseNet-121's."""
    if config is None:
        return dict(arch='121')
    from mmdensenet.analysis.building import load_config

    backbone = dict(load_config(config).model.get('backbone', {}))
    if backbone.pop('type', None) not in ('mmdensenet.DenseNet', 'DenseNet'):
        raise ToolError(f'{config} has no mmdensenet.DenseNet backbone')
    backbone.pop('init_cfg', None)
    backbone.pop('memory_efficient', None)
    with reraise_as_tool_error(f'{config} has an invalid backbone'):
        DenseNet.resolve_arch(backbone.get('arch', '121'))
    return backbone


def refuse_unsafe_outputs(chart: Path, json_file: Optional[Path], config: Optional[str]) -> None:
    """Refuses, before any work, an output that is the config, the other output or a folder."""
    for out in filter(None, (chart, json_file)):
        check_output(out, config)
    if json_file is not None and json_file.resolve() == chart.resolve():
        raise ToolError(f'--json {json_file} is also --out; choose another path')


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', help='a config with an mmdensenet.DenseNet backbone (default: 121)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(), help='torch.set_num_threads')
    parser.add_argument('--warmup', type=int, help='untimed steps before timing (default: 2 on CPU, 5 on CUDA)')
    parser.add_argument('--iters', type=int, help='timed steps (default: 3 on CPU, 30 on CUDA)')
    parser.add_argument(
        '--implementations', nargs='+', choices=IMPLEMENTATIONS, default=IMPLEMENTATIONS, help='what to compare'
    )
    parser.add_argument('--channels-last', action='store_true', help='add channels_last variants')
    parser.add_argument('--amp', action='store_true', help='add AMP variants (float16 on CUDA, bfloat16 on CPU)')
    parser.add_argument('--compile', action='store_true', help='add torch.compile variants')
    parser.add_argument('--compile-backend', default='inductor', help="torch.compile's backend (default: inductor)")
    parser.add_argument(
        '--max-batch',
        type=int,
        nargs='?',
        const=MAX_BATCH_LIMIT,
        metavar='LIMIT',
        help=f'CUDA only: the largest batch that trains, up to LIMIT (default {MAX_BATCH_LIMIT}), of each '
        'variant with the requested --channels-last and --amp, not compiled',
    )
    parser.add_argument('--out', type=Path, default=Path('benchmark.png'), help='the bar chart PNG to write')
    parser.add_argument('--json', type=Path, help='also write the results as JSON')
    args = parser.parse_args()
    device_type = 'cuda' if args.device.startswith('cuda') else 'cpu'
    warmup, iters = DEFAULT_STEPS[device_type]
    args.warmup = warmup if args.warmup is None else args.warmup
    args.iters = iters if args.iters is None else args.iters
    for name in ('batch_size', 'img_size', 'threads', 'iters', 'max_batch'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.warmup < 0:
        parser.error('--warmup must not be negative')
    if args.out.suffix.lower() != '.png':
        parser.error('--out must be a .png file')
    return args


def main() -> None:
    args = parse_args()
    if not re.fullmatch(r'cpu|cuda(:\d+)?', args.device):
        raise ToolError(f'--device must be cpu or cuda[:N], got {args.device!r}')
    with reraise_as_tool_error(f'unusable device {args.device!r}'):
        torch.empty(1, device=args.device)
    if args.max_batch and args.device == 'cpu':
        raise ToolError(
            '--max-batch needs CUDA: on CPU a batch too large for memory does not fail cleanly '
            '(the machine swaps or the kernel kills the process)'
        )
    outputs = [args.out, *([args.json] if args.json else [])]
    refuse_unsafe_outputs(args.out, args.json, args.config)
    setting = Setting(
        backbone=backbone_config(args.config),
        device=args.device,
        batch_size=args.batch_size,
        img_size=args.img_size,
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
        compile_backend=args.compile_backend,
    )
    arch = setting.backbone.get('arch', '121')
    net = f'DenseNet-{arch}' if isinstance(arch, str) else 'custom DenseNet'
    title = (
        f'{net}, batch {args.batch_size}, {args.img_size} px, fp32 unless AMP, '
        f'{machine_name(args.device, args.threads)}, torch {torch.__version__}'
    )
    if args.compile:
        title += f', compiled with {args.compile_backend}'
    print(title, flush=True)
    selected = list(variants(arch, args.implementations, args.channels_last, args.amp, args.compile))
    # All outputs or none: each is written to a temporary file, renamed into place at the end.
    with ExitStack() as stack:
        temporary = []
        for out in outputs:
            with reraise_as_tool_error(f'cannot write {out}'):
                temporary.append(stack.enter_context(atomic_output(out)))
        speeds = _run_child('speed', selected, setting)
        results = []
        for variant, speed in zip(selected, speeds):
            result = {**speed, **_run_child('memory', [variant], setting)[0]}
            print(f'  {variant.name}: {result}', flush=True)
            results.append((variant, result))
        if args.max_batch:
            # The set-up asked for, eager: with torch.compile each try would compile again.
            wanted = Variant('', channels_last=args.channels_last, amp=args.amp)
            for variant, result in results:
                if replace(variant, implementation='', memory_efficient=False) == wanted:
                    result['max_batch'] = max_batch(variant, setting, args.max_batch)
        print(format_table(results))
        plot(results, title, temporary[0])
        if args.json:
            temporary[1].write_text(json.dumps([dict(asdict(v), **r) for v, r in results], indent=2))
    print(f'chart written to {args.out}' + (f', results to {args.json}' if args.json else ''))


def child(job: str) -> None:
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
    if len(sys.argv) == 3 and sys.argv[1] == '--child':
        child(sys.argv[2])
    else:
        run_cli(main)
