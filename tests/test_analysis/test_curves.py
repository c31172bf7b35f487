"""mmdensenet.analysis.curves on scalar logs written by mmengine's own LocalVisBackend."""

from pathlib import Path

import pytest
from mmengine.visualization import LocalVisBackend
from PIL import Image

from mmdensenet.analysis.curves import find_scalar_log, plot_training_curves, read_scalar_log
from mmdensenet.errors import ToolError


def write_run(work_dir: Path, timestamp: str, by_epoch: bool = True) -> Path:
    """Log 2 epochs of 3 iterations the way mmengine's LoggerHook does; return vis_data/."""
    vis_data = work_dir / timestamp / 'vis_data'
    backend = LocalVisBackend(save_dir=str(vis_data))
    for epoch in (1, 2):
        for i in range(1, 4):
            step = (epoch - 1) * 3 + i
            record = dict(lr=0.1, loss=2.0 / step, loss_cls=1.5 / step, time=0.1, iter=step)
            if by_epoch:
                record['epoch'] = epoch
            backend.add_scalars(record, step=step, file_path=f'{timestamp}.json')
        metrics = {'accuracy/top1': 40.0 + epoch, 'accuracy/top5': 80.0 + epoch, 'time': 0.05}
        backend.add_scalars(metrics, step=epoch if by_epoch else 3 * epoch, file_path=f'{timestamp}.json')
    return vis_data


def test_read_splits_training_and_validation_records(tmp_path: Path) -> None:
    vis_data = write_run(tmp_path, '20260101_000000')
    for log_file in (vis_data / 'scalars.json', vis_data / '20260101_000000.json'):
        log = read_scalar_log(log_file)
        assert [r['step'] for r in log.train] == [1, 2, 3, 4, 5, 6]
        assert [r['step'] for r in log.val] == [1, 2]
        assert log.loss_keys == ['loss', 'loss_cls']
        assert log.accuracy_keys == ['accuracy/top1', 'accuracy/top5']
        assert log.val_step_name == 'epoch'


def test_iteration_based_runs_validate_by_iteration(tmp_path: Path) -> None:
    vis_data = write_run(tmp_path, '20260101_000000', by_epoch=False)
    log = read_scalar_log(vis_data / 'scalars.json')
    assert log.val_step_name == 'iteration'
    assert [r['step'] for r in log.val] == [3, 6]


def test_find_takes_the_latest_run_of_a_work_dir(tmp_path: Path) -> None:
    write_run(tmp_path, '20260101_000000')
    latest = write_run(tmp_path, '20260102_000000')
    (tmp_path / '20260103_000000').mkdir()  # a run that crashed before logging
    assert find_scalar_log(tmp_path) == latest / 'scalars.json'
    assert find_scalar_log(latest.parent) == latest / 'scalars.json'
    assert find_scalar_log(latest) == latest / 'scalars.json'
    assert find_scalar_log(latest / '20260102_000000.json') == latest / '20260102_000000.json'


def test_find_reports_missing_logs(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match='no such file'):
        find_scalar_log(tmp_path / 'nothing')
    with pytest.raises(ToolError, match=r'no vis_data/scalars\.json'):
        find_scalar_log(tmp_path)


@pytest.mark.parametrize(
    'text, message',
    [('{"loss": 1.0, "step": 1}\nnot json\n', r'scalars.json:2 is not JSON'), ('[1, 2]\n', 'not a scalar record')],
)
def test_read_rejects_malformed_lines(tmp_path: Path, text: str, message: str) -> None:
    log_file = tmp_path / 'scalars.json'
    log_file.write_text(text)
    with pytest.raises(ToolError, match=message):
        read_scalar_log(log_file)


def test_plot_writes_a_png_with_one_or_two_panels(tmp_path: Path) -> None:
    vis_data = write_run(tmp_path / 'with_val', '20260101_000000')
    both = plot_training_curves(tmp_path / 'with_val', tmp_path / 'both.png')
    loss_only_log = tmp_path / 'loss.json'
    loss_only_log.write_text('{"loss": 2.0, "step": 1}\n{"loss": 1.0, "step": 2}\n')
    loss_only = plot_training_curves(loss_only_log, tmp_path / 'loss.png')
    with Image.open(both) as both_image, Image.open(loss_only) as loss_image:
        assert both_image.format == loss_image.format == 'PNG'
        assert both_image.width == 2 * loss_image.width  # the accuracy panel doubles the width
    assert (vis_data / 'scalars.json').read_text().count('\n') == 8  # the log is left as it was


def test_plot_refuses_other_formats_and_logs_without_loss(tmp_path: Path) -> None:
    log_file = tmp_path / 'val_only.json'
    log_file.write_text('{"accuracy/top1": 50.0, "step": 1}\n')
    with pytest.raises(ToolError, match=r'must be a \.png'):
        plot_training_curves(log_file, tmp_path / 'curves.jpg')
    with pytest.raises(ToolError, match='no training loss'):
        plot_training_curves(log_file, tmp_path / 'curves.png')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['val_only.json']
