"""mmdensenet.apis.model: a config's model, built, checked and given a checkpoint's weights."""

import copy
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from torch import nn

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from mmdensenet.apis import build_model, init_model, load_config
from mmdensenet.apis.model import check_channels, unwrapped
from mmdensenet.errors import ToolError

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'densenet121_4xb256_in1k.py'
TINY = dict(growth_rate=8, depths=(1, 2), init_channels=16)


def write_config(path: Path, width: int = 28) -> Path:
    """A tiny classifier config without _base_ or default_scope: 'ImageClassifier' resolves only in the default."""
    path.write_text(
        f"""model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmdensenet.DenseNet', arch={TINY!r}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels={width}),
)
data_preprocessor = dict(mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0])
"""
    )
    return path


def write_checkpoint(path: Path, config: Path, **extra) -> dict:
    """Random weights (random BatchNorm statistics too) of the config's model, saved as the Runner saves them."""
    state_dict = build_model(load_config(config)).state_dict()
    for tensor in state_dict.values():
        if tensor.is_floating_point():
            tensor.uniform_(0.5, 1.5)
    torch.save(dict(state_dict=state_dict, **extra), path)
    return state_dict


def test_build_model_adds_the_data_preprocessor_in_the_default_scope(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / 'tiny.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model = build_model(cfg)
    assert model.data_preprocessor.mean.flatten().tolist() == [1.0, 2.0, 3.0]
    assert model.data_preprocessor.std.flatten().tolist() == [4.0, 5.0, 6.0]
    assert model.head.fc.out_features == 3
    assert cfg.model == model_cfg  # the config is left as it was


def test_build_model_refuses_a_config_without_a_buildable_model(tmp_path: Path) -> None:
    no_model = tmp_path / 'no_model.py'
    no_model.write_text('x = 1\n')
    with pytest.raises(ToolError, match=re.escape(f'config {no_model} defines no model')):
        build_model(load_config(no_model))
    unknown = tmp_path / 'unknown.py'
    unknown.write_text("model = dict(type='NoSuchModel')\n")
    with pytest.raises(ToolError, match="cannot build the config's model: "):
        build_model(load_config(unknown))


@pytest.mark.parametrize(
    'backbone, expected',
    [
        (
            "norm_cfg='BN'",
            "model.backbone.norm_cfg must be a dict with the type of a layer, e.g. dict(type='BN'), got 'BN'",
        ),
        ('norm_cfg=dict(eps=0.1)', 'model.backbone.norm_cfg must be a dict with the type of a layer'),
        ("norm_cfg=dict(type='BNX')", "model.backbone.norm_cfg.type: no layer is registered as 'BNX'; e.g. 'BN'"),
        ("act_cfg=dict(type='ReLUX')", "model.backbone.act_cfg.type: no layer is registered as 'ReLUX'; e.g. 'ReLU'"),
    ],
)
def test_layer_configs_name_their_key_and_type(tmp_path: Path, backbone: str, expected: str) -> None:
    """mmcv's own errors: 'cfg must be a dict', and 'Cannot find None in registry' for an unknown norm type."""
    config = write_config(tmp_path / 'tiny.py')
    config.write_text(config.read_text() + f"model['backbone'].update({backbone})\n")
    with pytest.raises(ToolError, match=re.escape(expected)):
        build_model(load_config(config))


def test_layer_configs_of_other_registered_types_build(tmp_path: Path) -> None:
    config = write_config(tmp_path / 'tiny.py')
    config.write_text(config.read_text() + "model['backbone'].update(norm_cfg=dict(type='GN', num_groups=4))\n")
    assert isinstance(build_model(load_config(config)).backbone.stem[1], torch.nn.GroupNorm)


def test_head_width_must_match_the_backbone() -> None:
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.arch = TINY
    cfg.model.head.in_channels = 28
    check_channels(MODELS.build(cfg.model))
    cfg.model.head.in_channels = 64
    with pytest.raises(ToolError, match=r'model\.head: in_channels is 64, but the backbone gives 28'):
        check_channels(MODELS.build(cfg.model))


def test_init_model_loads_every_weight_and_the_dataset_meta(tmp_path: Path) -> None:
    config = write_config(tmp_path / 'tiny.py')
    classes = ('cat', 'dog', 'fox')
    saved = write_checkpoint(tmp_path / 'tiny.pth', config, meta=dict(epoch=3, dataset_meta=dict(classes=classes)))
    model = init_model(config, tmp_path / 'tiny.pth')
    assert not model.training
    assert model.dataset_meta == dict(classes=classes)
    loaded = model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)
    # A config already read gives the same model; without a meta the dataset_meta is empty.
    write_checkpoint(tmp_path / 'plain.pth', config)
    assert init_model(load_config(config), str(tmp_path / 'plain.pth')).dataset_meta == {}


def test_init_model_without_a_checkpoint_has_random_weights(tmp_path: Path) -> None:
    config = write_config(tmp_path / 'tiny.py')
    torch.manual_seed(0)
    first = init_model(config)
    torch.manual_seed(1)
    second = init_model(config)
    assert not first.training
    assert first.dataset_meta == {}
    assert not torch.equal(first.head.fc.weight, second.head.fc.weight)


def test_init_model_refuses_what_does_not_fit(tmp_path: Path) -> None:
    config = write_config(tmp_path / 'tiny.py')
    other = write_config(tmp_path / 'other.py', width=28)
    other.write_text(other.read_text().replace('num_classes=3', 'num_classes=5'))
    write_checkpoint(tmp_path / 'other.pth', other)
    with pytest.raises(ToolError, match=r'does not fit the model: 2 tensors of another shape \(e\.g\. head\.fc'):
        init_model(config, tmp_path / 'other.pth')
    backbone_only = tmp_path / 'backbone.pth'
    torch.save(build_model(load_config(config)).backbone.state_dict(), backbone_only)
    with pytest.raises(ToolError, match=r'does not fit the model: \d+ tensors missing \(backbone\.'):
        init_model(config, backbone_only)
    with pytest.raises(ToolError, match='checkpoint not found'):
        init_model(config, tmp_path / 'missing.pth')
    # The head's width is checked first, so a mistaken config is not blamed on the checkpoint.
    with pytest.raises(ToolError, match=r'model\.head: in_channels is 64'):
        init_model(write_config(tmp_path / 'wide.py', width=64), tmp_path / 'other.pth')
    with pytest.raises(ToolError, match="cannot use device 'no-such-device'"):
        init_model(config, device='no-such-device')


@pytest.mark.parametrize(
    'damage, message',
    [
        (lambda t: t.fill_(float('nan')), 'backbone.stem.0.weight holds NaN or infinite values'),
        (lambda t: t.long(), 'backbone.stem.0.weight holds int64 values, where the model has float32'),
    ],
    ids=['nan', 'int64'],
)
def test_init_model_refuses_damaged_weights(tmp_path: Path, damage, message: str) -> None:
    config = write_config(tmp_path / 'tiny.py')
    state_dict = write_checkpoint(tmp_path / 'tiny.pth', config)
    damaged = {key: damage(tensor) if tensor.is_floating_point() else tensor for key, tensor in state_dict.items()}
    torch.save({'state_dict': damaged}, tmp_path / 'damaged.pth')
    with pytest.raises(ToolError) as error:
        init_model(config, tmp_path / 'damaged.pth')
    assert str(error.value) == f'checkpoint {tmp_path / "damaged.pth"}: {message}'


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_init_model_loads_half_precision_weights(tmp_path: Path, dtype: torch.dtype) -> None:
    config = write_config(tmp_path / 'tiny.py')
    state_dict = write_checkpoint(tmp_path / 'tiny.pth', config)
    half = {key: tensor.to(dtype) if tensor.is_floating_point() else tensor for key, tensor in state_dict.items()}
    torch.save({'state_dict': half}, tmp_path / 'half.pth')
    loaded = init_model(config, tmp_path / 'half.pth').state_dict()
    assert all(torch.equal(loaded[key], tensor.to(loaded[key].dtype)) for key, tensor in half.items())
    assert loaded['backbone.stem.1.num_batches_tracked'].dtype == torch.int64


def test_unwrapped_reaches_the_model_inside_wrappers() -> None:
    from mmpretrain.models import AverageClsScoreTTA

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    model.test_step = lambda data: data  # what a test-time-augmentation wrapper asks of its module
    assert unwrapped(AverageClsScoreTTA(module=model)) is model
    assert unwrapped(model) is model
