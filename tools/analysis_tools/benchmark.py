"""Benchmark our DenseNet against torchvision's and mmpretrain's: speed and peak memory.

python tools/analysis_tools/benchmark.py [CONFIG] --batch-size 16 --img-size 224 --out benchmark.png

Every variant (implementation x plain/memory-efficient x memory format x AMP) runs the same
classifier (backbone, global average pooling, linear head) with the same threads, device,
batch, image size and dtype. One child process times train steps (SGD) and inference of all
variants in turns, so that changes in the machine's load hit them alike; then each variant
measures in a process of its own the peak memory of a train step above the level left by a
warm-up step (weights, gradients, optimizer state): on CPU the peak resident set size, with
glibc told to hand freed blocks back to the system at once; on CUDA ``max_memory_allocated``.
"""

import argparse
import ctypes
import ctypes.util
import json
import platform
import re
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

from mmdensenet.cli import ToolError, atomic_output, reraise_as_tool_error, run_cli
from mmdensenet.models import DenseNet
from mmdensenet.registry import MODELS

IMPLEMENTATIONS = ('mmdensenet', 'torchvision', 'mmpretrain')
NUM_CLASSES = 1000
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@dataclass(frozen=True)
class Variant:
    """One model set-up to benchmark."""

    implementation: str
    memory_efficient: bool = False
    channels_last: bool = False
    amp: bool = False

    @property
    def name(self) -> str:
        parts = [self.implementation, 'memory_efficient' if self.memory_efficient else 'plain']
        parts += ['channels_last'] * self.channels_last + ['amp'] * self.amp
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
            loss = F.cross_entropy(self.model(self.images), self.labels)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        _synchronize(self.device)

    def infer(self) -> None:
        self.model.eval()
        with torch.no_grad(), self.autocast:
            self.model(self.images)
        _synchronize(self.device)


def _interleaved_best_seconds(steps: Sequence[Callable[[], None]], warmup: int, iters: int) -> list[float]:
    """Fastest time of each step, run in turns (starting one later each round) so load changes hit all alike.

    The minimum, as timeit reports it: on a shared machine other processes only ever add time.
    """
    times: list[list[float]] = [[] for _ in steps]
    for round_index in range(warmup + iters):
        for offset in range(len(steps)):
            i = (round_index + offset) % len(steps)
            start = time.perf_counter()
            steps[i]()
            if round_index >= warmup:
                times[i].append(time.perf_counter() - start)
    return [min(t) for t in times]


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
    """Train-step and inference throughput of every variant, measured in turns in one process."""
    runners = [_Runner(variant, setting) for variant in variants]
    train = _interleaved_best_seconds([r.train_step for r in runners], setting.warmup, setting.iters)
    infer = _interleaved_best_seconds([r.infer for r in runners], setting.warmup, setting.iters)
    images = setting.batch_size
    return [dict(train_images_per_s=images / t, infer_images_per_s=images / i) for t, i in zip(train, infer)]


def measure_memory(variant: Variant, setting: Setting) -> dict:
    """Peak train-step memory; needs a process of its own."""
    return dict(train_memory_mb=_peak_train_memory(_Runner(variant, setting)) / 2**20)


def _run_child(what: str, variants: Sequence[Variant], setting: Setting) -> list[dict]:
    job = json.dumps(dict(what=what, variants=[asdict(v) for v in variants], setting=asdict(setting)))
    result = subprocess.run([sys.executable, __file__, '--child', job], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ['no output'])[-1]
        raise ToolError(f'{what} of {", ".join(v.name for v in variants)} failed: {last_line}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def variants(
    arch: Union[str, dict], implementations: Sequence[str], channels_last: bool, amp: bool
) -> Iterator[Variant]:
    """Each of ``implementations`` that builds ``arch``, plain and memory-efficient, in the requested formats."""
    if not has_counterparts(arch):
        implementations = [i for i in implementations if i == 'mmdensenet']
    formats = [Variant('')]
    if channels_last:
        formats.append(Variant('', channels_last=True))
    if amp:
        formats += [replace(f, amp=True) for f in formats]
    for fmt in formats:
        for implementation in implementations:
            for memory_efficient in (False, True):
                yield replace(fmt, implementation=implementation, memory_efficient=memory_efficient)


def machine_name(device: str, threads: int) -> str:
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    model = re.search(r'model name\s*:\s*(.+)', Path('/proc/cpuinfo').read_text())
    return f'{model.group(1).strip() if model else platform.processor()}, {threads} threads'


def _ratio(value: Optional[float], reference: Optional[float]) -> str:
    return f'{value / reference:.2f}' if value and reference else '-'


def format_table(results: list[tuple[Variant, dict]]) -> str:
    """A Markdown table; ratios are against torchvision's plain model in the same format."""
    header = (
        '| variant | train img/s | infer img/s | train peak MB | train time x | infer time x | memory x |\n'
        '|---|---|---|---|---|---|---|'
    )
    rows = [header]
    by_variant = dict(results)
    for variant, r in results:
        reference = by_variant.get(replace(variant, implementation='torchvision', memory_efficient=False), {})
        train_x = _ratio(reference.get('train_images_per_s'), r['train_images_per_s'])
        infer_x = _ratio(reference.get('infer_images_per_s'), r['infer_images_per_s'])
        memory_x = _ratio(r['train_memory_mb'], reference.get('train_memory_mb'))
        rows.append(
            f'| {variant.name} | {r["train_images_per_s"]:.1f} | {r["infer_images_per_s"]:.1f} '
            f'| {r["train_memory_mb"]:.1f} | {train_x} | {infer_x} | {memory_x} |'
        )
    return '\n'.join(rows)


def plot(results: list[tuple[Variant, dict]], title: str, out_file: Path) -> None:
    """Three horizontal bar charts: train and inference throughput, train peak memory."""
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
    fig, axes = plt.subplots(1, 3, figsize=(16, 1.2 + 0.35 * len(results)), sharey=True)
    for ax, (key, label) in zip(axes, panels):
        values = [r[key] for _, r in results]
        ax.barh(names, values, color=colours)
        ax.bar_label(ax.containers[0], fmt='%.1f', fontsize=8)
        ax.set_xlabel(label)
    axes[0].invert_yaxis()  # first variant on top; the axes share y
    fig.suptitle(title)
    fig.tight_layout()
    with reraise_as_tool_error(f'cannot write {out_file}'), atomic_output(out_file) as tmp:
        fig.savefig(tmp, format='png', dpi=100)
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', help='a config with an mmdensenet.DenseNet backbone (default: 121)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(), help='torch.set_num_threads')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations before timing')
    parser.add_argument('--iters', type=int, default=3, help='timed iterations (the fastest counts)')
    parser.add_argument(
        '--implementations', nargs='+', choices=IMPLEMENTATIONS, default=IMPLEMENTATIONS, help='what to compare'
    )
    parser.add_argument('--channels-last', action='store_true', help='add channels_last variants')
    parser.add_argument('--amp', action='store_true', help='add AMP variants (float16 on CUDA, bfloat16 on CPU)')
    parser.add_argument('--out', type=Path, default=Path('benchmark.png'), help='the bar chart PNG to write')
    parser.add_argument('--json', type=Path, help='also write the results as JSON')
    args = parser.parse_args()
    for name in ('batch_size', 'img_size', 'threads', 'iters'):
        if getattr(args, name) < 1:
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
    setting = Setting(
        backbone=backbone_config(args.config),
        device=args.device,
        batch_size=args.batch_size,
        img_size=args.img_size,
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
    )
    arch = setting.backbone.get('arch', '121')
    net = f'DenseNet-{arch}' if isinstance(arch, str) else 'custom DenseNet'
    title = (
        f'{net}, batch {args.batch_size}, {args.img_size} px, fp32 unless AMP, '
        f'{machine_name(args.device, args.threads)}, torch {torch.__version__}'
    )
    print(title, flush=True)
    selected = list(variants(arch, args.implementations, args.channels_last, args.amp))
    speeds = _run_child('speed', selected, setting)
    results = []
    for variant, speed in zip(selected, speeds):
        result = {**speed, **_run_child('memory', [variant], setting)[0]}
        print(f'  {variant.name}: {result}', flush=True)
        results.append((variant, result))
    print(format_table(results))
    plot(results, title, args.out)
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps([dict(asdict(v), **r) for v, r in results], indent=2))
    print(f'chart written to {args.out}')


def child(job: str) -> None:
    spec = json.loads(job)
    setting = Setting(**spec['setting'])
    torch.set_num_threads(setting.threads)
    selected = [Variant(**v) for v in spec['variants']]
    if spec['what'] == 'speed':
        print(json.dumps(measure_speed(selected, setting)))
    else:
        print(json.dumps([measure_memory(variant, setting) for variant in selected]))


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--child':
        child(sys.argv[2])
    else:
        run_cli(main)
