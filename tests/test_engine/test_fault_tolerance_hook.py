"""FaultToleranceHook is registered in our registry and every shipped config turns it on.

What it does to a run is tested on real training subprocesses in tests/test_tools/test_fault_tolerance.py.
"""

import importlib
import signal
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdensenet.engine import FaultToleranceHook
from mmdensenet.registry import HOOKS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
RUNNABLE = sorted(p for p in CONFIGS.rglob('*.py') if '_base_' not in p.parts)
# The detection and segmentation configs inherit mmdet's and mmseg's.
ON_MMDET = ('detection', 'segmentation')


@pytest.mark.parametrize(
    'scope', ['mmpretrain', *(pytest.param(scope, marks=pytest.mark.detection) for scope in ('mmdet', 'mmseg'))]
)
def test_the_hook_resolves_by_its_scoped_name_from_each_codebase(scope: str) -> None:
    hooks = importlib.import_module(f'{scope}.registry').HOOKS
    with DefaultScope.overwrite_default_scope(scope):
        hook = hooks.build(dict(type='mmdensenet.FaultToleranceHook', signals=['SIGUSR1']))
    assert type(hook) is FaultToleranceHook and hook.signals == (signal.SIGUSR1,)
    assert HOOKS.get('FaultToleranceHook') is FaultToleranceHook


def test_unknown_signals_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown signals \['TERM'\]"):
        FaultToleranceHook(signals=['TERM'])


@pytest.mark.parametrize(
    'path',
    [pytest.param(p, marks=[pytest.mark.detection] if p.parent.name in ON_MMDET else []) for p in RUNNABLE],
    ids=lambda p: str(p.relative_to(CONFIGS)),
)
def test_every_config_turns_it_on(path: Path) -> None:
    cfg = Config.fromfile(path)
    assert cfg.default_hooks.fault_tolerance == dict(type='mmdensenet.FaultToleranceHook')
