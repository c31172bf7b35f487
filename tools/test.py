"""Evaluate a checkpoint on a config's test set.

python tools/test.py CONFIG CHECKPOINT [--out PREDICTIONS.pkl] [--cfg-options KEY=VALUE ...]
bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS]     # torchrun, one process per GPU
"""

import argparse

from mmdensenet.apis import evaluate
from mmdensenet.cli import ArgumentParser, parse_runner_args, run_cli


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description="Evaluate a checkpoint on a config's test set.")
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--work-dir', help='where the logs go (default: work_dirs/CONFIG_NAME)')
    parser.add_argument('--out', help='dump the predictions (.pkl) or, with --out-item metrics, the metrics here')
    parser.add_argument('--out-item', choices=['pred', 'metrics'], help='what --out holds (default: pred)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--tta', action='store_true', help="test-time augmentation with the config's tta_model")
    parser.add_argument('--show', action='store_true', help='show each prediction in a window')
    parser.add_argument('--show-dir', help='draw the predictions into this folder')
    parser.add_argument('--interval', type=int, help='with --show/--show-dir: every INTERVAL-th image (default 1)')
    parser.add_argument('--wait-time', type=float, help='with --show: seconds each window stays (default 2)')
    return parse_runner_args(parser, 'test_dataloader')


def main() -> None:
    evaluate(**vars(parse_args()))


if __name__ == '__main__':
    # Data that is not where the config says is the user's doing; other errors of a running job keep their traceback.
    run_cli(main, user_errors=(FileNotFoundError,))
