"""Train a classifier from a config.

python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
bash tools/dist_train.sh CONFIG GPUS [ARGS]     # torchrun, one process per GPU

SIGTERM or SIGINT stops training with a resumable checkpoint and exit status 75 (README: Fault tolerance).
"""

import argparse
import sys

from mmdensenet.apis import parse_runner_args, train
from mmdensenet.cli import ToolError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a classifier from a config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/CONFIG_NAME)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const=True,
        default=False,
        metavar='CHECKPOINT',
        help='continue from CHECKPOINT, or without one from the newest readable checkpoint in the work dir',
    )
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true', help="scale the lr to this run's total batch size")
    return parse_runner_args(parser, 'train_dataloader')


def main() -> None:
    args = parse_args()
    try:
        train(
            args.config,
            work_dir=args.work_dir,
            resume=args.resume,
            amp=args.amp,
            auto_scale_lr=args.auto_scale_lr,
            cfg_options=args.cfg_options,
            launcher=args.launcher,
        )
    except (ToolError, FileNotFoundError) as error:  # a bad argument, or data that is not where the config says
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
