"""Running the tools as a user would: subprocesses with one-line errors checked, on a tiny folder of images."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The modules that test configs import in the tools' processes: crash_hook, fault_injection.
HOOKS = REPO / 'tests' / 'test_tools'


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
    paths = os.pathsep.join([str(pythonpath), str(HOOKS)])
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


NUM_CLASSES = 3  # of the tiny folder; its train split holds 4 images of each
TINY_ARCH = dict(_delete_=True, growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)


def write_imagenet_folder(root: Path, train_per_class: int = 4, val_per_class: int = 2, size: int = 32) -> Path:
    """Writes random images in mmpretrain's ImageNet layout: {train,val}/ and meta/{train,val}.txt."""
    rng = np.random.default_rng(0)
    (root / 'meta').mkdir(parents=True)
    for split, per_class in (('train', train_per_class), ('val', val_per_class)):
        lines = []
        for label in range(NUM_CLASSES):
            for i in range(per_class):
                name = f'class{label}/{split}_{i}.png'
                (root / split / name).parent.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name)
                lines.append(f'{name} {label}\n')
        (root / 'meta' / f'{split}.txt').write_text(''.join(lines))
    return root
