"""Shared plumbing of the command-line tools: one-line errors and safe output files."""

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, Union

# Set by mmdensenet.apis.launch: where its processes leave their one-line errors.
ERROR_FOLDER_VARIABLE = 'MMDENSENET_ERROR_FOLDER'


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
        _exit_with(f'error: {exc}')
    except user_errors as exc:
        _exit_with(f'error: {type(exc).__name__}: {one_line(exc)}')


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, reporting a bad command line as one line (and status 2) like the tools' other errors."""

    def error(self, message: str) -> NoReturn:
        _exit_with(f'error: {" ".join(message.split())} (see {self.prog} --help)', 2)


def refuse_overwriting_inputs(out: Union[str, Path], *inputs: Union[str, Path, None]) -> None:
    """Raise a ``ToolError`` if the output ``out`` is one of the (existing) ``inputs``, also through links."""
    out = Path(out)
    for path in filter(None, inputs):
        if out.exists() and Path(path).exists() and out.samefile(path):
            raise ToolError(f'refusing to overwrite an input: {out} is {path}')


def writable_folder(path: Union[str, Path], what: str) -> Path:
    """Creates the folder ``path`` if needed, or says in one line, naming it as ``what``, why it cannot take files."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ToolError(f'{what} {path}: a file, not a folder')
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # permissions, read-only mounts and quotas alike
    except OSError as error:
        raise ToolError(f'{what} {path}: {error.strerror or one_line(error)}') from None
    return path


def require_png(out_file: Path) -> Path:
    """``out_file`` if it names a PNG; the tools write PNG whatever the name says otherwise."""
    if out_file.suffix.lower() != '.png':
        raise ToolError(f'the output must be a .png file, got {out_file}')
    return out_file


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextmanager
def atomic_output(out_file: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``out_file``, renamed to it only if the block succeeds."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{out_file.name}.', suffix=out_file.suffix, dir=out_file.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, out_file)
    finally:
        tmp.unlink(missing_ok=True)
