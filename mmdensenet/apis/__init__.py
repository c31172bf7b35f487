"""Entry points behind ``tools/train.py`` and ``tools/test.py``."""

from .distributed import prepare_distributed
from .runs import UserInputError, load_config, test, train

__all__ = ['UserInputError', 'load_config', 'prepare_distributed', 'test', 'train']
