"""tools/train.py and tools/test.py on a tiny ImageNet-layout folder."""

import pickle
import re
from pathlib import Path

import pytest
from cli_helpers import REPO, assert_ok, assert_one_line_error, python

from mmdensenet.analysis.curves import find_scalar_log, read_scalar_log

TRAIN = REPO / 'tools' / 'train.py'
TEST = REPO / 'tools' / 'test.py'


@pytest.fixture(scope='module')
def trained(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work_dir = tmp_path_factory.mktemp('work_dir')
    assert_ok(python(TRAIN, tiny_config, '--work-dir', work_dir, '--cfg-options', 'train_cfg.max_epochs=2'))
    return work_dir


def test_train_validates_and_checkpoints_every_epoch(trained: Path) -> None:
    log = read_scalar_log(find_scalar_log(trained))
    assert [r['step'] for r in log.train] == list(range(1, 13))  # 12 images in batches of 2, 2 epochs
    assert [r['step'] for r in log.val] == [1, 2]
    assert all('accuracy/top1' in r and 'accuracy/top5' in r for r in log.val)
    assert {p.name for p in trained.glob('*.pth')} == {'epoch_1.pth', 'epoch_2.pth'}


def test_test_reproduces_the_last_validation_and_dumps_predictions(
    trained: Path, tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'predictions.pkl'
    result = python(TEST, tiny_config, trained / 'epoch_2.pth', '--work-dir', tmp_path / 'test', '--out', out)
    assert_ok(result)
    top1 = float(re.search(r'Epoch\(test\).*accuracy/top1: ([\d.]+)', result.stdout + result.stderr).group(1))
    assert top1 == pytest.approx(read_scalar_log(find_scalar_log(trained)).val[-1]['accuracy/top1'])
    predictions = pickle.loads(out.read_bytes())
    assert len(predictions) == 6  # the validation images
    assert {int(p['gt_label']) for p in predictions} == {0, 1, 2}


def test_bad_input_is_one_line(tiny_config: Path, trained: Path, tmp_path: Path) -> None:
    """Each tool once; tests/test_apis covers every check behind them."""
    assert_one_line_error(python(TRAIN, tiny_config, '--resume', tmp_path / 'missing.pth'), 'checkpoint to resume')
    out = tmp_path / 'predictions.json'
    assert_one_line_error(python(TEST, tiny_config, trained / 'epoch_2.pth', '--out', out), '.pkl')
    assert not out.exists()
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'not a checkpoint')
    assert_one_line_error(python(TEST, tiny_config, broken), 'is not a PyTorch checkpoint')
    no_data = 'train_dataloader.dataset.data_root=' + str(tmp_path / 'no_data')
    result = python(TRAIN, tiny_config, '--work-dir', tmp_path / 'run', '--cfg-options', no_data)
    assert_one_line_error(result, 'No such file or directory')
