"""Command-line options that tools/train.py and tools/test.py share."""

import argparse
from collections.abc import Sequence
from typing import Optional

from mmengine.config import DictAction

from ..errors import one_line


class ConfigOptions(DictAction):
    """mmengine's ``--cfg-options`` action; an item it cannot parse is a usage error naming the item."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Sequence[str],
        option_string: Optional[str] = None,
    ) -> None:
        for item in values:
            if not item.partition('=')[0] or '=' not in item:
                raise argparse.ArgumentError(self, f'expected KEY=VALUE, got {item!r}')
            try:
                super().__call__(parser, namespace, [item], option_string)
            except Exception as error:
                raise argparse.ArgumentError(self, f'cannot parse {item!r}: {one_line(error)}') from None


def parse_runner_args(parser: argparse.ArgumentParser, loader: str) -> argparse.Namespace:
    """Adds ``--no-pin-memory``, ``--cfg-options``, ``--launcher`` and ``--local-rank`` to ``parser`` and parses.

    Args:
        parser: The tool's parser with its own arguments.
        loader: The dataloader named in the ``--cfg-options`` example, e.g. 'train_dataloader'.

    Returns:
        The arguments, named as :func:`~mmdensenet.apis.train` and :func:`~mmdensenet.apis.evaluate` take them
        (``local_rank`` too: the run makes it ``LOCAL_RANK``, where mmengine reads it).
    """
    parser.add_argument('--no-pin-memory', action='store_true', help="turn off the dataloaders' pin_memory")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ConfigOptions,
        metavar='KEY=VALUE',
        help=f'override config keys, e.g. {loader}.batch_size=32',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    # torch.distributed.launch (used by `mim train/test --launcher pytorch`) passes the local rank.
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return parser.parse_args()
