"""Runs a script of tools/ in a subprocess, as a user would."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]


def run_tool(script: str, *args: object, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` with ``args`` (in ``cwd``); the checkout comes first on the import path."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / script), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, 'PYTHONPATH': path},
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    """The tool failed with exactly one line on stderr that contains ``expected``."""
    assert result.returncode != 0
    assert result.stderr.count('\n') == 1 and result.stderr.startswith('error: '), result.stderr
    assert expected in result.stderr, result.stderr
