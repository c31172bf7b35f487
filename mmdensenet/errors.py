"""The user's mistakes: one error type, reported by the tools as one line without a traceback.

``mmdensenet.cli.tool.run_cli`` prints it; with ``MMDENSENET_TRACEBACK=1`` it keeps its traceback, and
so does the error it was raised from, for when the fault may be code's rather than the config's.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager


class ToolError(Exception):
    """An error in the user's input, reported as one line without a traceback.

    Not a ``ValueError``: code that catches those (mmengine's, a plugin's) must not take it for its own.
    """


# How torch's DataLoader re-raises the error of a worker process: its type, with the worker's traceback as message.
WORKER_ERROR = re.compile(r'Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback')


def one_line(exc: BaseException) -> str:
    """The exception's message on a single line, or its type name if it has none.

    The message of an error that torch's DataLoader brought back from a worker is the worker's
    traceback; its last line holds the original message.
    """
    message = str(exc)
    if WORKER_ERROR.match(message):
        message = message.rstrip().splitlines()[-1].partition(': ')[2]
    return ' '.join(message.split()) or type(exc).__name__


@contextmanager
def reraise_as_tool_error(what: str) -> Iterator[None]:
    """Turn any exception raised in the block into a ``ToolError`` saying ``what`` failed."""
    try:
        yield
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(f'{what}: {one_line(exc)}') from exc
