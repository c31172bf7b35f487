"""Benchmark our DenseNet against torchvision's and mmpretrain's: speed and peak memory.

python tools/analysis_tools/benchmark.py [CONFIG] --batch-size 16 --img-size 224 --out benchmark.png

Each variant (implementation x plain/memory-efficient x memory format x AMP x torch.compile) is the
same classifier, timed in train steps and inference in processes of its own, round after round with
the others in turns, then measured for the memory of a train step at its peak and at rest; on CUDA,
``--max-batch`` finds the largest batch that trains. The tool
prints the results as they come and as a Markdown table and writes a bar chart (and with ``--json``
the numbers): all of its outputs or none. The measuring, in child processes, is
``mmdensenet.analysis.benchmark``'s; the title, table and chart ``mmdensenet.analysis.benchmark_report``'s.
"""

import argparse
import json
import re
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import torch

from mmdensenet.analysis.benchmark import IMPLEMENTATIONS, Setting, Variant, max_batch, measure, variants
from mmdensenet.analysis.benchmark_report import format_table, plot, title
from mmdensenet.apis import load_config
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError, reraise_as_tool_error
from mmdensenet.models import DenseNet
from mmdensenet.outputs import atomic_output, check_output

# (warm-up, timed) steps per process by default: a CPU step of DenseNet-121 takes seconds, a GPU step milliseconds.
DEFAULT_STEPS = {'cpu': (2, 3), 'cuda': (5, 30)}
DEFAULT_ROUNDS = 3
MAX_BATCH_LIMIT = 4096  # the largest batch --max-batch tries unless given a limit


def backbone_config(config: Optional[str]) -> dict:
    """Our backbone's config from a model config, or DenseNet-121's."""
    if config is None:
        return dict(arch='121')
    backbone = dict((load_config(config).get('model') or {}).get('backbone', {}))
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
    parser.add_argument(
        '--warmup', type=int, help='untimed steps of each process before timing (default: 2 on CPU, 5 on CUDA)'
    )
    parser.add_argument('--iters', type=int, help='timed steps of each process (default: 3 on CPU, 30 on CUDA)')
    parser.add_argument(
        '--rounds',
        type=int,
        default=DEFAULT_ROUNDS,
        help=f'processes per variant, one per round, the variants in turns (default: {DEFAULT_ROUNDS})',
    )
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
    for name in ('batch_size', 'img_size', 'threads', 'iters', 'rounds', 'max_batch'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.warmup < 0:
        parser.error('--warmup must not be negative')
    if args.out.suffix.lower() != '.png':
        parser.error('--out must be a .png file')
    return args


def print_try(batch_size: int, fits: bool) -> None:
    print(f'    batch {batch_size}: {"fits" if fits else "out of memory"}', flush=True)


def print_child(round_index: int, variant: Variant) -> None:
    print(f'  round {round_index + 1}: {variant.name}', flush=True)


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
        rounds=args.rounds,
    )
    chart_title = title(setting, args.compile)
    print(chart_title, flush=True)
    arch = setting.backbone.get('arch', '121')
    selected = list(variants(arch, args.implementations, args.channels_last, args.amp, args.compile))
    # All outputs or none: each is written to a temporary file, renamed into place at the end.
    with ExitStack() as stack:
        temporary = []
        for out in outputs:
            with reraise_as_tool_error(f'cannot write {out}'):
                temporary.append(stack.enter_context(atomic_output(out)))
        results = []
        for variant, result in measure(selected, setting, print_child):
            summary = {k: v for k, v in result.items() if not isinstance(v, list)}  # all but the step times
            print(f'  {variant.name}: {summary}', flush=True)
            results.append((variant, result))
        if args.max_batch:
            # The set-up asked for, eager: with torch.compile each try would compile again.
            wanted = Variant('', channels_last=args.channels_last, amp=args.amp)
            for variant, result in results:
                if replace(variant, implementation='', memory_efficient=False) == wanted:
                    print(f'  {variant.name}: largest batch that trains', flush=True)
                    result['max_batch'] = max_batch(variant, setting, args.max_batch, print_try)
        print(format_table(results))
        plot(results, chart_title, temporary[0])
        if args.json:
            temporary[1].write_text(json.dumps([dict(asdict(v), **r) for v, r in results], indent=2))
    print(f'chart written to {args.out}' + (f', results to {args.json}' if args.json else ''))


if __name__ == '__main__':
    run_cli(main)
