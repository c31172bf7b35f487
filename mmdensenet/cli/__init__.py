"""The command line: the tools' parser and error path (``tool``), the options tools/train.py and tools/test.py
share (``arguments``), and the torchrun launcher of tools/dist_*.sh (``launch``)."""

from .arguments import parse_runner_args
from .tool import ArgumentParser, run_cli

__all__ = ['ArgumentParser', 'parse_runner_args', 'run_cli']
