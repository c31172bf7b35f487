"""Runs a script of tools/ in a subprocess, as a user would."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_tool(script: str, *args: object) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` with ``args``; the checkout comes first on the import path."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / script), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, 'PYTHONPATH': path},
    )


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    """The tool failed with exactly one line on stderr that contains ``expected``."""
    assert result.returncode != 0
    assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
