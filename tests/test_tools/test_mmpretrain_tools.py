"""mmpretrain's own analysis tools on our configs and runs, through `mim run mmpretrain ...`."""

import pickle
import sys
from pathlib import Path

from PIL import Image

from tests.cli_helpers import assert_ok, run

MIM = Path(sys.executable).with_name('mim')


def mim_run(*args: object):
    return run(MIM, 'run', 'mmpretrain', *args)


def test_print_config(tiny_config: Path) -> None:
    result = mim_run('print_config', tiny_config)
    assert_ok(result)
    assert "type='mmdensenet.DenseNet'" in result.stdout and 'growth_rate=8' in result.stdout


def test_confusion_matrix_of_a_checkpoint(trained: Path, tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / 'confusion.pkl'
    picture = tmp_path / 'confusion.png'
    result = mim_run('confusion_matrix', tiny_config, trained / 'epoch_2.pth', '--out', out, '--show-path', picture)
    assert_ok(result)
    matrix = pickle.loads(out.read_bytes())
    assert tuple(matrix.shape) == (1000, 1000)  # the tiny config keeps ImageNet's 1000 classes
    assert matrix[:3].sum() == 6 and matrix[3:].sum() == 0  # the 6 validation images of classes 0 to 2
    with Image.open(picture) as image:
        assert image.format == 'PNG'


def test_analyze_logs_plots_our_scalar_log(trained: Path, tmp_path: Path) -> None:
    (log,) = trained.glob('*/vis_data/[0-9]*.json')
    out = tmp_path / 'curves.png'
    result = mim_run('analyze_logs', 'plot_curve', log, '--keys', 'loss', 'accuracy/top1', '--out', out)
    assert_ok(result)
    with Image.open(out) as image:
        assert image.format == 'PNG'


def test_browse_dataset_draws_the_images(tiny_config: Path, tmp_path: Path) -> None:
    """Its 'original' mode; the others fail in mmpretrain's own make_grid on matplotlib 3.10 and later."""
    out = tmp_path / 'browse'
    result = mim_run('browse_dataset', tiny_config, '--output-dir', out, '--not-show', '--phase', 'train',
                     '--show-number', 3, '--mode', 'original')  # fmt: skip
    assert_ok(result)
    assert sorted(p.name for p in out.iterdir()) == ['train_0.png', 'train_1.png', 'train_2.png']
