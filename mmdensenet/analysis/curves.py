"""Loss and accuracy curves from the scalar log that mmengine writes during training.

mmengine's ``LocalVisBackend`` appends one JSON object per line to
``<work_dir>/<timestamp>/vis_data/scalars.json`` (and to ``<timestamp>.json`` beside it):
training records carry ``loss`` and ``step`` (the global iteration), validation records
carry metrics such as ``accuracy/top1`` with ``step`` the epoch (the iteration for
iteration-based training, whose records have no ``epoch``).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import ToolError
from ..inputs import require_file
from ..outputs import atomic_output, check_output, require_png

SCALAR_LOG_NAME = 'scalars.json'
LOSS_PREFIX = 'loss'
ACCURACY_PREFIX = 'accuracy/'


@dataclass
class ScalarLog:
    """Training and validation records of one run, in the order they were written."""

    train: list[dict]
    val: list[dict]

    @property
    def loss_keys(self) -> list[str]:
        return _keys_with_prefix(self.train, LOSS_PREFIX)

    @property
    def accuracy_keys(self) -> list[str]:
        return _keys_with_prefix(self.val, ACCURACY_PREFIX)

    @property
    def val_step_name(self) -> str:
        by_epoch = any('epoch' in record for record in self.train)
        return 'epoch' if by_epoch else 'iteration'


def _keys_with_prefix(records: list[dict], prefix: str) -> list[str]:
    return sorted({key for record in records for key in record if key.startswith(prefix)})


def find_scalar_log(log_path: Union[str, Path]) -> Path:
    """The scalar log of a run.

    Args:
        log_path: A JSON scalar log, a ``vis_data`` folder, a run's ``<timestamp>`` folder,
            or a work_dir, whose latest run is taken.

    Returns:
        The path of the JSON file.
    """
    path = Path(log_path)
    if not path.exists():
        raise ToolError(f'no such file or folder: {path}')
    if not path.is_dir():
        return require_file(path, 'scalar log')
    for candidate in (path / SCALAR_LOG_NAME, path / 'vis_data' / SCALAR_LOG_NAME):
        if candidate.is_file():
            return candidate
    runs = sorted(path.glob(f'*/vis_data/{SCALAR_LOG_NAME}'))  # timestamps sort by time
    if not runs:
        raise ToolError(f'no vis_data/{SCALAR_LOG_NAME} in {path} or its run folders')
    return runs[-1]


def read_scalar_log(log_file: Union[str, Path]) -> ScalarLog:
    """Parse a JSON-lines scalar log into its training and validation records."""
    log_file = Path(log_file)
    train, val = [], []
    with log_file.open('rb') as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode('utf-8'))
            except UnicodeDecodeError:
                raise ToolError(
                    f'{log_file}:{line_number} is not text: give the JSON-lines scalar log that mmengine writes '
                    f'(vis_data/{SCALAR_LOG_NAME})'
                ) from None
            except json.JSONDecodeError as exc:
                raise ToolError(f'{log_file}:{line_number} is not JSON ({exc.msg})') from exc
            if not isinstance(record, dict) or 'step' not in record:
                raise ToolError(f'{log_file}:{line_number} is not a scalar record with a "step"')
            if any(key.startswith(LOSS_PREFIX) for key in record):
                train.append(record)
            elif any(key.startswith(ACCURACY_PREFIX) for key in record):
                val.append(record)
    return ScalarLog(train, val)


def _plot_series(axes, records: list[dict], keys: list[str], xlabel: str, ylabel: str, **style) -> None:
    for key in keys:
        points = [(record['step'], record[key]) for record in records if key in record]
        axes.plot(*zip(*points), label=key, **style)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()


def plot_training_curves(log_path: Union[str, Path], out_file: Union[str, Path]) -> Path:
    """Plot loss against iteration and accuracy against epoch to a PNG.

    Args:
        log_path: A run's work_dir, its ``vis_data`` folder, ``scalars.json`` or the
            ``<timestamp>.json`` scalar log (see ``find_scalar_log``).
        out_file: Where to write the PNG; written atomically.

    Returns:
        The path of the PNG.
    """
    out_file = require_png(Path(out_file))
    log_file = find_scalar_log(log_path)
    check_output(out_file, log_file)
    log = read_scalar_log(log_file)
    if not log.loss_keys:
        raise ToolError(f'{log_file} has no training loss records')

    panels = 2 if log.accuracy_keys else 1
    figure = Figure(figsize=(6 * panels, 4.5), layout='constrained')
    loss_axes, *accuracy_axes = figure.subplots(1, panels, squeeze=False)[0]
    _plot_series(loss_axes, log.train, log.loss_keys, 'iteration', 'loss', linewidth=1)
    loss_axes.set_title('training loss')
    if accuracy_axes:
        _plot_series(accuracy_axes[0], log.val, log.accuracy_keys, log.val_step_name, 'accuracy (%)', marker='o')
        accuracy_axes[0].set_title('validation accuracy')
    figure.suptitle(log_file.parent.parent.name if log_file.parent.name == 'vis_data' else log_file.stem)

    with atomic_output(out_file) as tmp:
        figure.savefig(tmp, format='png', dpi=100)
    return out_file
