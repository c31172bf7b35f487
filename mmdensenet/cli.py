"""The tools' front door: argument parsing and the one path by which a tool reports an error and exits."""

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from .errors import (
    ToolError,
    one_line,
    reraise_as_tool_error,  # noqa: F401  (older code imported it, and the names below, from here)
)
from .outputs import atomic_output, require_png, writable_folder  # noqa: F401
from .outputs import check_output as refuse_overwriting_inputs  # noqa: F401

# Set by mmdensenet.apis.launch: where its processes leave their one-line errors.
ERROR_FOLDER_VARIABLE = 'MMDENSENET_ERROR_FOLDER'


def _exit_with(line: str, status: int = 1) -> NoReturn:
    """Ends the process with ``status`` and the error ``line``: on stderr, or, in a process that
    mmdensenet.apis.launch started, in a file of its folder, which prints each distinct line once."""
    folder = os.environ.get(ERROR_FOLDER_VARIABLE)
    if folder is not None and 'LOCAL_RANK' in os.environ:
        Path(folder, f'rank{int(os.environ.get("RANK", 0)):05d}').write_text(line + '\n')
    else:
        print(line, file=sys.stderr)
    sys.exit(status)


def run_cli(main: Callable[[], object], user_errors: tuple[type[Exception], ...] = (Exception,)) -> None:
    """Run a tool's ``main``; a user's error ends it with one line on stderr and status 1.

    Args:
        main: The tool's work.
        user_errors: Exceptions besides ``ToolError`` that are the user's doing; any other
            keeps its traceback. By default every exception is the user's.
    """
    try:
        main()
    except ToolError as exc:
        _exit_with(f'error: {one_line(exc)}')
    except user_errors as exc:
        _exit_with(f'error: {type(exc).__name__}: {one_line(exc)}')


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, reporting a bad command line as one line (and status 2) like the tools' other errors."""

    def error(self, message: str) -> NoReturn:
        _exit_with(f'error: {" ".join(message.split())} (see {self.prog} --help)', 2)
