"""mmdensenet.apis.input_shape: the channels, size and stride that get_flops and export_onnx feed a config's model."""

from pathlib import Path

import pytest
from mmengine.config import Config

from mmdensenet.apis import build_model, input_shape, load_config
from mmdensenet.apis.input_shape import pipeline_image_size
from mmdensenet.apis.model import net_stride
from mmdensenet.errors import ToolError

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
DIGITS = CONFIGS / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'
# The size each shipped classifier's test pipeline gives, by the config's folder; a config on the
# digits (as some of finetune/ are) gives theirs wherever it lives.
SIZES = {'configs': 224, 'cifar10': 32, 'cifar100': 32, 'svhn': 32, 'digits': 8, 'multilabel': 224, 'finetune': 224}
CLASSIFIERS = sorted(
    path
    for path in CONFIGS.rglob('*.py')
    if not {'_base_', 'detection', 'segmentation'} & set(path.relative_to(CONFIGS).parts)
)


def tiny_config(tmp_path: Path, extra: str = '') -> Path:
    """DenseNet-121's ImageNet config with a two-block net (stride 8)."""
    path = tmp_path / 'tiny.py'
    path.write_text(
        f'_base_ = [{str(CONFIGS / "densenet121_4xb256_in1k.py")!r}]\n'
        'model = dict(backbone=dict(arch=dict(_delete_=True, growth_rate=8, depths=(1, 2), init_channels=16)),'
        ' head=dict(in_channels=28))\n' + extra
    )
    return path


@pytest.mark.parametrize('config', CLASSIFIERS, ids=lambda path: path.name)
def test_every_shipped_classifier_has_its_datasets_size(config: Path) -> None:
    size = SIZES['digits'] if '_digits' in config.name else SIZES[config.parent.name]
    assert pipeline_image_size(Config.fromfile(config)) == (size,) * 2


def test_the_digits_net_takes_grey_8x8_images_and_at_least_4x4() -> None:
    cfg = load_config(DIGITS)
    model = build_model(cfg)
    assert net_stride(model) == 4  # the CIFAR stem, then two transitions
    assert input_shape(cfg, model) == (1, 8, 8)
    assert input_shape(cfg, model, [4]) == (1, 4, 4)
    assert input_shape(cfg, model, [4, 6]) == (1, 4, 6)
    with pytest.raises(ToolError, match=r'^--img-size 4x3 is smaller than the net, whose stride is 4 '):
        input_shape(cfg, model, [4, 3], '--img-size')


@pytest.mark.parametrize(
    'steps, size',
    [
        # mmcv's Resize and CenterCrop take (w, h), mmpretrain's crops (h, w).
        ([dict(type='Resize', scale=(48, 32))], (32, 48)),
        ([dict(type='CenterCrop', crop_size=(48, 32))], (32, 48)),
        ([dict(type='RandomCrop', crop_size=(48, 32))], (48, 32)),
        ([dict(type='ResizeEdge', scale=96), dict(type='EfficientNetCenterCrop', crop_size=64)], (64, 64)),
        # Sizes that follow each image's own.
        ([dict(type='ResizeEdge', scale=64)], None),
        ([dict(type='Resize', scale=(48, 32), keep_ratio=True)], None),
        ([], None),
    ],
)
def test_the_size_is_what_the_test_pipeline_gives(tmp_path: Path, steps: list, size) -> None:
    cfg = load_config(tiny_config(tmp_path, f'test_pipeline = {[*steps, dict(type="PackInputs")]!r}\n'))
    assert pipeline_image_size(cfg) == size


def test_a_pipeline_that_keeps_each_images_size_needs_the_option(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path, "test_pipeline = [dict(type='PackInputs')]\n"))
    model = build_model(cfg)
    assert input_shape(cfg, model, [32]) == (3, 32, 32)
    with pytest.raises(ToolError, match=r'tiny.py keeps each image at its own size; give --shape$'):
        input_shape(cfg, model, None, '--shape')


def test_a_broken_test_pipeline_is_one_error(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path, "test_pipeline = [dict(type='NoSuchTransform')]\n"))
    with pytest.raises(
        ToolError, match=r"^cannot build the config's test pipeline: .*NoSuchTransform.*; give --shape$"
    ):
        input_shape(cfg, build_model(cfg), None, '--shape')


def test_a_backbone_without_feature_info_has_stride_1(tmp_path: Path) -> None:
    """mmpretrain's own DenseNet says no stride: any size passes here, and running the model says the rest."""
    cfg = load_config(
        tiny_config(tmp_path, "model = dict(backbone=dict(_delete_=True, type='DenseNet', arch='121'))\n")
    )
    model = build_model(cfg)
    assert net_stride(model) == 1
    assert input_shape(cfg, model, [2]) == (3, 2, 2)
