"""Train a classifier from a config.

python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
bash tools/dist_train.sh CONFIG GPUS [ARGS]     # torchrun, one process per GPU

SIGTERM or SIGINT stops training with a resumable checkpoint and exit status 75 (docs/fault_tolerance.md).
"""

import argparse

from mmdensenet.apis import train
from mmdensenet.cli import ArgumentParser, parse_runner_args, run_cli


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description='Train a classifier from a config.')
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
    parser.add_argument('--no-validate', action='store_true', help='do not validate during training')
    parser.add_argument(
        '--no-persistent-workers', action='store_true', help="turn off the dataloaders' persistent_workers"
    )
    return parse_runner_args(parser, 'train_dataloader')


def main() -> None:
    train(**vars(parse_args()))


if __name__ == '__main__':
    # Data that is not where the config says is the user's doing; other errors of a running job keep their traceback.
    run_cli(main, user_errors=(FileNotFoundError,))
