"""Attributing set-up errors to config keys."""

import copy
from pathlib import Path

import pytest
from mmengine.config import Config
from mmpretrain.registry import DATASETS, MODELS

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from mmdensenet.apis import runner_setup
from mmdensenet.apis.runner_setup import config_key, set_up_error

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


def test_a_malformed_annotation_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    cfg = Config.fromfile(CONFIG)
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text('a.png 0\nb.png\n')
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    error = build_error(DATASETS.build, copy.deepcopy(cfg.train_dataloader.dataset))
    line = set_up_error(error, cfg, ('model', 'train_dataloader'))
    assert str(line) == (
        f"train_dataloader.dataset: {tmp_path / 'meta' / 'train.txt'} line 2 is 'b.png': "
        "each line must be 'path label' (an integer label after a space)"
    )
    assert line.__cause__ is None  # the data's fault: the tools name no traceback switch


def test_errors_outside_registry_builds_have_no_key() -> None:
    assert config_key(ValueError('not from a build'), Config.fromfile(CONFIG), ('model',)) is None


def test_frames_not_recognised_leave_the_plain_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is read from mmengine's frames; another mmengine's frames must not break the one line."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.arch = '999'
    error = build_error(MODELS.build, cfg.model)
    assert str(set_up_error(error, cfg, ('model',))).startswith('model.backbone: ')
    assert set_up_error(error, cfg, ('model',)).__cause__ is error  # code may be at fault: chained
    monkeypatch.setattr(runner_setup, 'BUILDERS', {})  # builders whose code objects are not these
    assert str(set_up_error(error, cfg, ('model',))).startswith('cannot set up the run: ')

    # A frame of the known code whose locals are not what this mmengine's are: the plain message all the same.
    class Dataset:
        data_list: list = []  # and no ann_file

        def serialize(self) -> None:
            raise ValueError('need at least one array to concatenate')

    with pytest.raises(ValueError) as info:
        Dataset().serialize()
    monkeypatch.setattr(runner_setup, 'SERIALIZE_DATA', Dataset.serialize.__code__)
    assert str(set_up_error(info.value, cfg, ('model',))) == (
        'cannot set up the run: need at least one array to concatenate'
    )
