"""Evaluate a checkpoint on a config's test set.

python tools/test.py CONFIG CHECKPOINT [--out PREDICTIONS.pkl] [--cfg-options KEY=VALUE ...]
bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS]     # torchrun, one process per GPU
"""

import argparse
import sys

from mmdensenet.apis import evaluate, parse_runner_args
from mmdensenet.cli import ToolError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a checkpoint on a config's test set.")
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--work-dir', help='where the logs go (default: work_dirs/CONFIG_NAME)')
    parser.add_argument('--out', help='dump the predictions to this .pkl file')
    return parse_runner_args(parser, 'test_dataloader')


def main() -> None:
    args = parse_args()
    try:
        evaluate(
            args.config,
            args.checkpoint,
            work_dir=args.work_dir,
            out=args.out,
            cfg_options=args.cfg_options,
            launcher=args.launcher,
        )
    except (ToolError, FileNotFoundError) as error:  # a bad argument, or data that is not where the config says
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
