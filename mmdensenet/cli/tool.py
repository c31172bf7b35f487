"""A tool's front door: its argument parser, and the one path by which it reports an error and exits."""

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ..errors import ToolError, one_line

# Set by mmdensenet.cli.launch: where its processes leave their one-line errors.
ERROR_FOLDER_VARIABLE = 'MMDENSENET_ERROR_FOLDER'
# Set to 1 by the user: every error keeps its full traceback, for when the fault may be code's.
TRACEBACK_VARIABLE = 'MMDENSENET_TRACEBACK'


def traceback_requested() -> bool:
    """Whether the user asked for tracebacks (``MMDENSENET_TRACEBACK`` set, and not to 0)."""
    return os.environ.get(TRACEBACK_VARIABLE, '0') not in ('', '0')


def exit_with_error(line: str, status: int = 1) -> NoReturn:
    """Ends the process with ``status`` and the error ``line``: on stderr, or, in a process that
    mmdensenet.cli.launch started, in a file of its folder, which prints each distinct line once."""
    folder = os.environ.get(ERROR_FOLDER_VARIABLE)
    if folder is not None and 'LOCAL_RANK' in os.environ:
        Path(folder, f'rank{int(os.environ.get("RANK", 0)):05d}').write_text(line + '\n')
    else:
        print(line, file=sys.stderr)
    sys.exit(status)


def error_line(error: Exception) -> str:
    """The one line that reports ``error``, naming the traceback switch where the fault may be code's.

    That is any error but a ``ToolError``, and a ``ToolError`` that reports another error (raised
    ``from`` it): one met while building what the config names, whose code may be the user's own. An
    ``OSError`` behind it (a full disk, a missing permission) is the machine's, not code's.
    """
    if isinstance(error, ToolError):
        line, cause = f'error: {one_line(error)}', error.__cause__
        may_be_code = cause is not None and not isinstance(cause, (ToolError, OSError))
    else:
        line, may_be_code = f'error: {type(error).__name__}: {one_line(error)}', True
    return f'{line} ({TRACEBACK_VARIABLE}=1 shows the traceback)' if may_be_code else line


def run_cli(main: Callable[[], object], user_errors: tuple[type[Exception], ...] = (Exception,)) -> None:
    """Runs a tool's ``main``; a user's error ends it with one line on stderr and status 1.

    With ``MMDENSENET_TRACEBACK=1`` every error keeps its full traceback instead.

    Args:
        main: The tool's work.
        user_errors: Exceptions besides ``ToolError`` that are reported as one line; any other
            keeps its traceback. By default every exception.
    """
    try:
        with warnings.catch_warnings():
            # mmcv-lite has no compiled ops, so importing mmpretrain's models (as building any model in
            # the mmpretrain scope does) warns that MultiScaleDeformableAttention, which no DenseNet
            # uses, cannot be imported: a line on stderr above a tool's one-line error.
            warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformableAttention``', UserWarning)
            # mmengine imports pkg_resources to find a config's scope (``mmdet::``), which setuptools 81
            # warns about: advice for mmengine's authors, and another line above the error.
            warnings.filterwarnings('ignore', 'pkg_resources is deprecated as an API', UserWarning)
            main()
    except Exception as error:
        if traceback_requested() or not isinstance(error, (ToolError, *user_errors)):
            raise
        exit_with_error(error_line(error))


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, reporting a bad command line as one line (and status 2) like the tools' other errors."""

    def error(self, message: str) -> NoReturn:
        exit_with_error(f'error: {" ".join(message.split())} (see {self.prog} --help)', 2)
