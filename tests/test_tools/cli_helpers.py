"""Running the tools as a user would: subprocesses with one-line errors checked."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(
    *command: object, pythonpath: Path = REPO, env: dict = {}, cwd: Path = REPO, timeout: Optional[float] = None
) -> subprocess.CompletedProcess:
    """Runs a command with ``pythonpath`` (the checkout by default) and the crash hook importable.

    ``timeout`` (seconds) fails a test whose command would otherwise hang, e.g. reading a named pipe.
    """
    paths = os.pathsep.join([str(pythonpath), str(HERE)])
    full_env = {**os.environ, 'PYTHONPATH': paths, 'OMP_NUM_THREADS': '1', **env}
    command = [str(c) for c in command]
    return subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def python(*args: object, **kwargs) -> subprocess.CompletedProcess:
    return run(sys.executable, *args, **kwargs)


def run_tool(
    script: str, *args: object, cwd: Path = REPO, timeout: Optional[float] = None
) -> subprocess.CompletedProcess:
    """Runs ``tools/<script>`` with ``args``, as a user would."""
    return python(REPO / 'tools' / script, *args, cwd=cwd, timeout=timeout)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error:') and expected in lines[0], result.stderr[-3000:]
