"""torchrun for the distributed scripts, with a user's mistake reported once, as one line.

``python -m mmdensenet.cli.launch tools/train.py CONFIG GPUS [ARGS]`` (or ``tools/test.py CONFIG
CHECKPOINT GPUS [ARGS]``), what ``tools/dist_train.sh`` (``dist_test.sh``) runs, checks the
arguments and the variables NNODES, NODE_RANK and PORT (on the first node, that no process
listens on PORT) and runs torchrun in this process: GPUS processes on each of the nodes that
NNODES, NODE_RANK, MASTER_ADDR and PORT describe. Each training or test process that stops on a user's
mistake (a config key, a file) writes its one-line error into a folder this launcher makes, instead
of printing it (see :func:`mmdensenet.cli.tool.run_cli`). When the run fails, the launcher prints each
distinct line once and exits with the processes' status; torchrun would print the line once per
process, followed by its own report and traceback. A failure that no process reported as the
user's keeps torchrun's report.
"""

import errno
import logging
import os
import re
import socket
import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch.distributed.run as torchrun
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from ..errors import ToolError
from ..inputs import require_file
from ..weights.checkpoint_io import checkpoint_source
from .tool import ERROR_FOLDER_VARIABLE, exit_with_error

# The arguments of each tool before its own, as tools/dist_<tool>.sh takes them.
POSITIONALS = {'train': ('CONFIG', 'GPUS'), 'test': ('CONFIG', 'CHECKPOINT', 'GPUS')}


def _number(name: str, default: int, low: int, high: Optional[int] = None) -> int:
    """The environment variable ``name`` as a whole number from ``low`` (to ``high``), or ``default`` if unset."""
    value = os.environ.get(name) or str(default)
    if not re.fullmatch(r'[0-9]+', value) or int(value) < low or (high is not None and int(value) > high):
        allowed = f'of at least {low}' if high is None else f'from {low} to {high}'
        raise ToolError(f"{name} must be a whole number {allowed}, got '{value}'")
    return int(value)


def check_port_free(port: int) -> None:
    """Refuses a ``port`` that a process on this machine listens on, where torchrun's store would fail to start."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the store does: TIME_WAIT is no obstacle
        try:
            probe.bind(('', port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise ToolError(
                f'PORT {port} is in use on this machine (by another distributed job?); set PORT to a free port'
            ) from None


def reported_errors(folder: Path) -> list[str]:
    """The distinct error lines the processes left in ``folder``, by rank."""
    lines = [path.read_text().strip() for path in sorted(folder.iterdir())]
    return list(dict.fromkeys(line for line in lines if line))


def torchrun_arguments(script: Path, args: list[str]) -> list[str]:
    """torchrun's arguments to run ``script`` with its dist_*.sh's ``CONFIG [CHECKPOINT] GPUS [ARGS]``, checked."""
    names = POSITIONALS[script.stem]
    if len(args) < len(names):
        raise ToolError(f'usage: bash tools/dist_{script.stem}.sh {" ".join(names)} [ARGS]')
    given = dict(zip(names, args))
    if not re.fullmatch(r'[1-9][0-9]*', given['GPUS']):
        raise ToolError(f"GPUS must be a positive number of processes, got '{given['GPUS']}'")
    require_file(given['CONFIG'], 'config file')
    if 'CHECKPOINT' in given:
        checkpoint_source(given['CHECKPOINT'])
    nodes = _number('NNODES', 1, low=1)
    return [
        f'--nnodes={nodes}',
        f'--node_rank={_number("NODE_RANK", 0, low=0, high=nodes - 1)}',
        f'--master_addr={os.environ.get("MASTER_ADDR") or "127.0.0.1"}',
        f'--master_port={_number("PORT", 29500, low=1, high=65535)}',
        f'--nproc_per_node={given["GPUS"]}',
        str(script),
        *args[: len(names) - 1],  # GPUS comes last and is torchrun's
        '--launcher',
        'pytorch',
        *args[len(names) :],
    ]


def main(argv: Optional[list[str]] = None) -> None:
    script, *args = sys.argv[1:] if argv is None else argv
    try:
        torchrun_config = torchrun.parse_args(torchrun_arguments(Path(script), args))
        if torchrun_config.node_rank == 0:  # the node whose torchrun starts the store that the others join
            check_port_free(torchrun_config.master_port)
    except ToolError as error:
        exit_with_error(f'error: {error}', 2)
    # The agent's notes on stopping the other processes; a genuine failure's report below says it all.
    logging.getLogger('torch.distributed.elastic.multiprocessing.api').setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix='mmdensenet-errors-') as folder:
        os.environ[ERROR_FOLDER_VARIABLE] = folder
        try:
            torchrun.run(torchrun_config)
        except ChildFailedError as failure:
            errors = reported_errors(Path(folder))
            if not errors:
                raise
            exit_codes = [f.exitcode for f in failure.failures.values() if f.exitcode and f.exitcode > 0]
            print('\n'.join(errors), file=sys.stderr)
            sys.exit(max(exit_codes, default=1))


if __name__ == '__main__':
    main()
