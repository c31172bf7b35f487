"""run_cli: a user's mistake is one line; where the fault may be code's, the line names the traceback switch."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mmdensenet.cli.tool import TRACEBACK_VARIABLE, run_cli
from mmdensenet.errors import ToolError

REPO = Path(__file__).resolve().parents[2]
HINT = f'({TRACEBACK_VARIABLE}=1 shows the traceback)'


def raising(error: Exception) -> Callable[[], None]:
    def main() -> None:
        raise error

    return main


def wrapped() -> None:
    try:
        raise KeyError('width')
    except KeyError as error:
        raise ToolError('model.backbone: KeyError: width') from error


def failed_write() -> None:
    try:
        raise OSError(27, 'File too large')
    except OSError as error:
        raise ToolError('cannot save checkpoint epoch_1.pth: File too large') from error


def one_line_of(main: Callable[[], None], capsys: pytest.CaptureFixture, **kwargs) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, **kwargs)
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    return lines[0]


def test_errors_are_one_line_naming_the_switch_where_code_may_be_at_fault(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    assert one_line_of(raising(ToolError('config file not found: a.py')), capsys) == (
        'error: config file not found: a.py'
    )
    assert one_line_of(wrapped, capsys) == f'error: model.backbone: KeyError: width {HINT}'
    # The machine's failure (a full disk) is not code's: no switch.
    assert one_line_of(failed_write, capsys) == 'error: cannot save checkpoint epoch_1.pth: File too large'
    assert one_line_of(raising(RuntimeError('boom')), capsys) == f'error: RuntimeError: boom {HINT}'
    # Errors a tool does not name as the user's keep their traceback.
    with pytest.raises(RuntimeError, match='boom'):
        run_cli(raising(RuntimeError('boom')), user_errors=(FileNotFoundError,))


def test_the_switch_keeps_every_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACEBACK_VARIABLE, '1')
    with pytest.raises(ToolError) as info:
        run_cli(wrapped)
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(RuntimeError):
        run_cli(raising(RuntimeError('boom')))
    monkeypatch.setenv(TRACEBACK_VARIABLE, '0')
    with pytest.raises(SystemExit):
        run_cli(wrapped)


def test_a_failing_registered_module_is_one_line_or_its_traceback(tmp_path: Path) -> None:
    """A researcher's own module that fails in its __init__: the key and the switch, then the traceback."""
    (tmp_path / 'exploding.py').write_text(
        'from mmengine.registry import MODELS\n'
        'from torch import nn\n\n\n'
        '@MODELS.register_module()\n'
        'class Exploding(nn.Module):\n'
        '    def __init__(self):\n'
        "        raise RuntimeError('bug in my module')\n"
    )
    config = tmp_path / 'exploding_config.py'
    config.write_text(
        f'_base_ = [{str(REPO / "configs" / "densenet121_4xb256_in1k.py")!r}]\n'
        "custom_imports = dict(imports=['mmdensenet', 'exploding'], allow_failed_imports=False)\n"
        "model = dict(backbone=dict(_delete_=True, type='Exploding'))\n"
    )
    command = [sys.executable, REPO / 'tools' / 'train.py', config, '--work-dir', tmp_path / 'run']
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(REPO), str(tmp_path)]), 'OMP_NUM_THREADS': '1'}
    env.pop(TRACEBACK_VARIABLE, None)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith('error: model.backbone: ') and 'bug in my module' in lines[0]
    assert lines[0].endswith(HINT)
    result = subprocess.run(command, capture_output=True, text=True, env={**env, TRACEBACK_VARIABLE: '1'})
    assert result.returncode == 1
    assert 'Traceback (most recent call last)' in result.stderr
    assert f'{tmp_path / "exploding.py"}", line 8, in __init__' in result.stderr
    assert 'ToolError: model.backbone: ' in result.stderr.strip().splitlines()[-1]
