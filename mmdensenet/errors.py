"""The user's mistakes: one error type, reported by the tools as one line without a traceback."""

from collections.abc import Iterator
from contextlib import contextmanager


class ToolError(ValueError):
    """An error in the user's input, reported as one line without a traceback."""


def one_line(exc: BaseException) -> str:
    """The exception's message on a single line, or its type name if it has none."""
    return ' '.join(str(exc).split()) or type(exc).__name__


@contextmanager
def reraise_as_tool_error(what: str) -> Iterator[None]:
    """Turn any exception raised in the block into a ``ToolError`` saying ``what`` failed."""
    try:
        yield
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(f'{what}: {one_line(exc)}') from exc
