"""Entry points behind ``tools/train.py`` and ``tools/test.py``."""

from .distributed import prepare_distributed
from .runs import evaluate, load_config, train

__all__ = ['evaluate', 'load_config', 'prepare_distributed', 'train']
