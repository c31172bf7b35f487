"""Converts torchvision DenseNet weights into a checkpoint for our configs, or back (--reverse).

Examples::

    python tools/convert_torchvision.py densenet121-a639ec97.pth checkpoints/densenet121_mm.pth
    python tools/convert_torchvision.py --reverse work_dirs/densenet121/epoch_90.pth densenet121_tv.pth
"""

import argparse

from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.weights import from_torchvision, to_torchvision
from mmdensenet.weights.torchvision_keys import TORCHVISION_ARCHS


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint to read (torchvision DenseNet, or ours with --reverse)')
    parser.add_argument('dst', help='checkpoint to write; its folder is created if missing')
    parser.add_argument('--arch', choices=TORCHVISION_ARCHS, help='fail unless SRC holds this DenseNet')
    parser.add_argument(
        '--reverse', action='store_true', help='convert one of our checkpoints into a torchvision state dict'
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    convert = to_torchvision if args.reverse else from_torchvision
    print(convert(args.src, args.dst, args.arch).summary())


if __name__ == '__main__':
    run_cli(main)
