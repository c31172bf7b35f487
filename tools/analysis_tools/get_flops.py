"""Print configs' parameters and FLOPs, in mmpretrain's table convention and in mmengine's.

Each figure is what the model executes; where DenseNet transitions pool before their convolution,
the figure of the published order (convolution, then pooling), which mmpretrain's table gives,
follows in parentheses.

python tools/analysis_tools/get_flops.py configs/densenet121_4xb256_in1k.py [CONFIG ...] [--shape H W]

The input has the channels the net takes (1 for grey configs such as the digits) and, unless --shape
says otherwise, the size of each config's test pipeline (224 for ImageNet, 32 for CIFAR and SVHN,
8 for the digits).
"""

import argparse
from typing import Optional

from mmdensenet.analysis.complexity import analyze_complexity
from mmdensenet.apis import build_model, input_shape, load_config
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', metavar='CONFIG', help='config files')
    parser.add_argument(
        '--shape', type=int, nargs='+', metavar='SIZE', help="input size: H W, or one size; default: each config's"
    )
    args = parser.parse_args()
    if args.shape is not None and (len(args.shape) > 2 or min(args.shape) < 1):
        parser.error(f'--shape takes one or two positive sizes, got {args.shape}')
    return args


def _both(ours: str, published: str) -> str:
    """``ours``, followed by the published order's figure where that differs."""
    return ours if ours == published else f'{ours} (published order: {published})'


def report(config: str, size: Optional[list[int]]) -> str:
    cfg = load_config(config)
    model = build_model(cfg)
    shape = input_shape(cfg, model, size, '--shape')
    try:
        ours, published = (analyze_complexity(model, shape, published_order=order) for order in (False, True))
    except RuntimeError as exc:  # e.g. an input too small for a network that does not say its stride
        raise ToolError(f'{config}: cannot run the model on a {shape[1]}x{shape[2]} input: {exc}') from exc
    flops = _both(f'{ours.flops:,}', f'{published.flops:,}')
    mmengine_flops = _both(f'{ours.mmengine_flops:,}', f'{published.mmengine_flops:,}')
    lines = [
        f'Config: {config}',
        f'Input shape: {shape}; FLOPs of the extract_feat path (backbone and neck)',
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
    for i, config in enumerate(args.configs):
        print(('\n' if i else '') + report(config, args.shape), flush=True)


if __name__ == '__main__':
    run_cli(main)
