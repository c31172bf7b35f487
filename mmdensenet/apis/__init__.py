"""Entry points behind ``tools/train.py`` and ``tools/test.py``."""

from .arguments import parse_runner_args
from .distributed import prepare_distributed
from .runs import evaluate, load_config, train

__all__ = ['evaluate', 'load_config', 'parse_runner_args', 'prepare_distributed', 'train']
