"""Attributing set-up errors to config keys."""

import copy
from pathlib import Path

import pytest
from mmengine.config import Config
from mmpretrain.registry import DATASETS, MODELS

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from mmdensenet.apis.runner_setup import config_key

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'densenet121_4xb256_in1k.py'


def build_error(build, cfg: dict) -> Exception:
    with pytest.raises(Exception) as info:
        build(cfg)
    return info.value


def test_model_errors_name_the_sub_config() -> None:
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.arch = '999'
    error = build_error(MODELS.build, cfg.model)
    assert config_key(error, cfg, ('model',)) == 'model.backbone'
    cfg = Config.fromfile(CONFIG)
    cfg.model.head.loss = dict(type='NoSuchLoss')
    assert config_key(build_error(MODELS.build, cfg.model), cfg, ('model',)) == 'model.head.loss'


def test_dataset_errors_name_the_loader_that_was_built(tmp_path: Path) -> None:
    cfg = Config.fromfile(CONFIG)
    cfg.val_dataloader.dataset.data_root = str(tmp_path / 'missing')
    cfg.test_dataloader.dataset.data_root = str(tmp_path / 'missing')
    # The Runner builds from copies, so the failing config is found by its content.
    error = build_error(DATASETS.build, copy.deepcopy(cfg.test_dataloader.dataset))
    assert config_key(error, cfg, ('model', 'test_dataloader')) == 'test_dataloader.dataset'
    assert config_key(error, cfg, ('model', 'train_dataloader', 'val_dataloader')) == 'val_dataloader.dataset'


def test_errors_outside_registry_builds_have_no_key() -> None:
    assert config_key(ValueError('not from a build'), Config.fromfile(CONFIG), ('model',)) is None
