"""Command-line options that tools/train.py and tools/test.py share."""

import argparse
import os

from mmengine.config import DictAction


def parse_runner_args(parser: argparse.ArgumentParser, loader: str) -> argparse.Namespace:
    """Adds ``--cfg-options``, ``--launcher`` and ``--local-rank`` to ``parser`` and parses.

    Args:
        parser: The tool's parser with its own arguments.
        loader: The dataloader named in the ``--cfg-options`` example, e.g. 'train_dataloader'.
    """
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=f'override config keys, e.g. {loader}.batch_size=32'
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    # torch.distributed.launch (used by `mim train/test --launcher pytorch`) passes the local rank.
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
