"""torchrun for the distributed scripts, with a user's mistake reported once, as one line.

``python -m mmdensenet.apis.launch [torchrun's arguments] SCRIPT [ARGS]`` runs torchrun in this
process. Each training or test process that stops on a user's mistake (a config key, a file) writes
its one-line error into a folder this launcher makes, instead of printing it (see
:func:`mmdensenet.cli.run_cli`). When the run fails, the launcher prints each distinct line once and
exits with the processes' status; torchrun would print the line once per process, followed by its
own report and traceback. A failure that no process reported as the user's keeps torchrun's report.
"""

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

from ..cli import ERROR_FOLDER_VARIABLE


def reported_errors(folder: Path) -> list[str]:
    """The distinct error lines the processes left in ``folder``, by rank."""
    lines = [path.read_text().strip() for path in sorted(folder.iterdir())]
    return list(dict.fromkeys(line for line in lines if line))


def main(argv: Optional[list[str]] = None) -> None:
    # The agent's notes on stopping the other processes; a genuine failure's report below says it all.
    logging.getLogger('torch.distributed.elastic.multiprocessing.api').setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix='mmdensenet-errors-') as folder:
        os.environ[ERROR_FOLDER_VARIABLE] = folder
        try:
            run(parse_args(argv))
        except ChildFailedError as failure:
            errors = reported_errors(Path(folder))
            if not errors:
                raise
            exit_codes = [f.exitcode for f in failure.failures.values() if f.exitcode and f.exitcode > 0]
            print('\n'.join(errors), file=sys.stderr)
            sys.exit(max(exit_codes, default=1))


if __name__ == '__main__':
    main()
