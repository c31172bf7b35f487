"""The checks train makes before building a Runner."""

import re
from pathlib import Path

import pytest

from mmdensenet.apis import train
from mmdensenet.errors import ToolError

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'densenet121_4xb256_in1k.py'


def test_a_missing_checkpoint_to_resume_from_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match='checkpoint to resume from not found'):
        train(CONFIG, work_dir=str(tmp_path / 'run'), resume=str(tmp_path / 'missing.pth'))


def test_auto_scale_lr_needs_a_base_batch_size(tmp_path: Path) -> None:
    config = tmp_path / 'no_base_batch.py'
    config.write_text(f'_base_ = [{str(CONFIG)!r}]\nauto_scale_lr = dict(_delete_=True)\n')
    with pytest.raises(ToolError, match=r'auto_scale_lr\.base_batch_size'):
        train(config, work_dir=str(tmp_path / 'run'), auto_scale_lr=True)


@pytest.mark.parametrize(
    'options, expected',
    [
        ({'train_cfg.max_epochs': 0}, 'train_cfg.max_epochs must be a whole number of at least 1, got 0'),
        ({'train_cfg.max_epochs': 1.5}, 'train_cfg.max_epochs must be a whole number of at least 1, got 1.5'),
        ({'train_cfg.val_interval': 0}, 'train_cfg.val_interval must be a whole number of at least 1, got 0'),
        ({'val_dataloader.num_workers': 2.5}, 'val_dataloader.num_workers must be a whole number of at least 0'),
        ({'optim_wrapper.optimizer.lr': '0.1'}, "optim_wrapper.optimizer.lr must be a number, got '0.1'"),
        ({'optim_wrapper.optimizer.momentum': True}, 'optim_wrapper.optimizer.momentum must be a number, got True'),
        (
            {'optim_wrapper.optimizer.type': 'SGDX'},
            "optim_wrapper.optimizer.type: no optimizer is registered as 'SGDX'",
        ),
    ],
)
def test_training_settings_are_checked_before_any_work(tmp_path: Path, options: dict, expected: str) -> None:
    """The Runner would stop later, blaming another key (max_epochs=0: the lr schedule) or none."""
    with pytest.raises(ToolError, match=re.escape(expected)):
        train(CONFIG, work_dir=str(tmp_path / 'run'), cfg_options=options)
    assert not (tmp_path / 'run').exists()
