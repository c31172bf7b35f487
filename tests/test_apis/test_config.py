"""mmdensenet.apis.config: reading a config, its --cfg-options and its work dir."""

import re
from pathlib import Path

import pytest
from mmengine.registry import MODELS, OPTIMIZERS

from mmdensenet.apis import load_config
from mmdensenet.apis.config import config_paths, is_registered
from mmdensenet.errors import ToolError

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'densenet121_4xb256_in1k.py'


def test_load_config_applies_options_and_names_the_work_dir() -> None:
    cfg = load_config(CONFIG, {'train_dataloader.batch_size': 32, 'train_dataloader.dataset.data_root': '/data/in1k'})
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_dataloader.dataset.data_root == '/data/in1k'
    assert cfg.work_dir == 'work_dirs/densenet121_4xb256_in1k'
    assert load_config(CONFIG, work_dir='/tmp/run').work_dir == '/tmp/run'


def test_missing_and_broken_configs_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match='config file not found'):
        load_config(tmp_path / 'missing.py')
    broken = tmp_path / 'broken.py'
    broken.write_text("model = dict(type='ImageClassifier',\n")
    with pytest.raises(ToolError, match=re.escape(f'cannot read config {broken}: ')):
        load_config(broken)


def test_malformed_cfg_options_name_the_flag() -> None:
    with pytest.raises(ToolError, match='--cfg-options: '):
        load_config(CONFIG, {'train_cfg.max_epochs.x': 1})


def test_cfg_options_may_add_only_settings_that_something_reads() -> None:
    with pytest.raises(ToolError, match=r'--cfg-options: modle is not a key of .* nor a setting'):
        load_config(CONFIG, {'modle.backbone.arch': '169'})
    assert load_config(CONFIG, {'compile': True, 'resume': True}).compile is True  # read by the Runner


def test_is_registered_looks_in_the_configs_scope_and_above() -> None:
    assert is_registered(OPTIMIZERS, 'SGD', 'mmpretrain')  # torch's, in mmengine's root registry
    assert is_registered(OPTIMIZERS, 'LARS', 'mmpretrain')  # mmpretrain's own
    assert not is_registered(OPTIMIZERS, 'LARS', 'mmengine')
    assert is_registered(MODELS, 'mmdensenet.DenseNet', 'mmpretrain')
    assert not is_registered(MODELS, 'BNX', 'mmpretrain')


def test_config_paths_name_every_value() -> None:
    value = dict(backbone=dict(norm_cfg=dict(type='BN')), losses=[dict(type='A')])
    assert [path for path, _ in config_paths(value, 'model')] == [
        'model', 'model.backbone', 'model.backbone.norm_cfg', 'model.backbone.norm_cfg.type',
        'model.losses', 'model.losses[0]', 'model.losses[0].type',
    ]  # fmt: skip
