"""The checks evaluate (tools/test.py) makes before building a Runner."""

from pathlib import Path

import pytest

from mmdensenet.apis import evaluate
from mmdensenet.errors import ToolError

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'densenet121_4xb256_in1k.py'


def test_a_missing_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match='checkpoint not found'):
        evaluate(CONFIG, str(tmp_path / 'missing.pth'))


def test_test_checks_its_loaders_workers(tmp_path: Path) -> None:
    checkpoint = tmp_path / 'weights.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(ToolError, match=r"test_dataloader\.num_workers must be a whole number of at least 0, got '2'"):
        evaluate(CONFIG, str(checkpoint), cfg_options={'test_dataloader.num_workers': '2'})


def test_out_must_be_a_pickle(tmp_path: Path) -> None:
    checkpoint = tmp_path / 'weights.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(ToolError, match=r'\.pkl'):
        evaluate(CONFIG, str(checkpoint), out=str(tmp_path / 'predictions.json'))
    assert not (tmp_path / 'predictions.json').exists()


def test_test_options_are_checked_before_any_work(tmp_path: Path) -> None:
    checkpoint = tmp_path / 'weights.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(ToolError, match='--out-item needs --out'):
        evaluate(CONFIG, str(checkpoint), out_item='metrics')
    with pytest.raises(ToolError, match=r'\.json or \.yaml'):
        evaluate(CONFIG, str(checkpoint), out=str(tmp_path / 'metrics.txt'), out_item='metrics')
    with pytest.raises(ToolError, match='only with --show or --show-dir'):
        evaluate(CONFIG, str(checkpoint), wait_time=1.0)
    with pytest.raises(ToolError, match='--interval must be positive'):
        evaluate(CONFIG, str(checkpoint), show_dir=str(tmp_path / 'drawn'), interval=0)
    with pytest.raises(ToolError, match=r'--show-dir .*weights.pth: a file, not a folder'):
        evaluate(CONFIG, str(checkpoint), show_dir=str(checkpoint))
    with pytest.raises(ToolError, match=r'--out .*weights.pth: a file, not a folder'):
        evaluate(CONFIG, str(checkpoint), out=str(checkpoint / 'predictions.pkl'))
    with pytest.raises(ToolError, match=r'--tta: .* defines no tta_model'):
        evaluate(CONFIG, str(checkpoint), tta=True)
    assert not (tmp_path / 'drawn').exists()
