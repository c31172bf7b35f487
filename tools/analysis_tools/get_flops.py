"""Print configs' parameters and FLOPs, in mmpretrain's table convention and in mmengine's.

Each figure is what the model executes; where DenseNet transitions pool before their convolution,
the figure of the published order (convolution, then pooling), which mmpretrain's table gives,
follows in parentheses.

python tools/analysis_tools/get_flops.py configs/densenet121_4xb256_in1k.py [CONFIG ...] [--shape H W]
"""

import argparse

from mmdensenet.analysis.complexity import analyze_complexity
from mmdensenet.apis import build_model, load_config
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', metavar='CONFIG', help='config files')
    parser.add_argument('--shape', type=int, nargs='+', default=[224, 224], help='input size: H W, or one size')
    args = parser.parse_args()
    if len(args.shape) not in (1, 2) or min(args.shape) < 1:
        parser.error(f'--shape takes one or two positive sizes, got {args.shape}')
    return args


def _both(ours: str, published: str) -> str:
    """``ours``, followed by the published order's figure where that differs."""
    return ours if ours == published else f'{ours} (published order: {published})'


def report(config: str, height: int, width: int) -> str:
    model = build_model(load_config(config))
    try:
        ours, published = (
            analyze_complexity(model, (3, height, width), published_order=order) for order in (False, True)
        )
    except RuntimeError as exc:  # e.g. an input too small for the network
        raise ToolError(f'{config}: cannot run the model on a {height}x{width} input: {exc}') from exc
    flops = _both(f'{ours.flops:,}', f'{published.flops:,}')
    mmengine_flops = _both(f'{ours.mmengine_flops:,}', f'{published.mmengine_flops:,}')
    lines = [
        f'Config: {config}',
        f'Input shape: (3, {height}, {width}); FLOPs of the extract_feat path (backbone and neck)',
        f'Params: {ours.params:,}',
        f'FLOPs (mmpretrain table convention): {flops}',
        f'FLOPs (mmengine get_model_complexity_info): {mmengine_flops}',
        f'Params(M) / Flops(G): {_both(ours.table_style(), published.table_style())}',
    ]
    if ours != published:
        lines.insert(2, "In parentheses: the published order (transitions convolve, then pool), of mmpretrain's table")
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    height, width = args.shape * 2 if len(args.shape) == 1 else args.shape
    for i, config in enumerate(args.configs):
        print(('\n' if i else '') + report(config, height, width), flush=True)


if __name__ == '__main__':
    run_cli(main)
