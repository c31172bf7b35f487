"""The four ImageNet-1k configs: the table's models, its evaluation pipeline and the paper's recipe."""

from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from mmdensenet.models import DenseNet

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
# arch: parameters of the 1000-class model, as in the table
TABLE = {'121': 7_978_856, '169': 14_149_480, '201': 20_013_928, '161': 28_681_000}


def load(arch: str) -> Config:
    return Config.fromfile(CONFIGS / f'densenet{arch}_4xb256_in1k.py')


@pytest.mark.parametrize('arch', TABLE)
def test_builds_the_tables_model(arch: str) -> None:
    cfg = load(arch)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert type(model.backbone) is DenseNet  # ours, not mmpretrain's
    assert model.backbone.out_channels == (model.head.fc.in_features,)
    assert model.head.fc.out_features == 1000
    assert sum(p.numel() for p in model.parameters()) == TABLE[arch]


@pytest.mark.parametrize('arch', TABLE)
def test_evaluates_like_the_table(arch: str) -> None:
    cfg = load(arch)
    steps = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    assert steps == ['mmdensenet.LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'PackInputs']
    resize, crop = cfg.test_dataloader.dataset.pipeline[1:3]
    assert (resize.scale, resize.edge, crop.crop_size) == (256, 'short', 224)
    assert cfg.data_preprocessor.to_rgb
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor.std == [58.395, 57.12, 57.375]
    assert cfg.test_evaluator == dict(type='Accuracy', topk=(1, 5))
    for loader, split in (('train_dataloader', 'train'), ('test_dataloader', 'val')):
        dataset = cfg[loader].dataset
        assert (dataset.type, dataset.data_root, dataset.split) == ('ImageNet', 'data/imagenet', split)


@pytest.mark.parametrize('arch', TABLE)
def test_trains_with_the_papers_recipe_on_4x256_images(arch: str) -> None:
    cfg = load(arch)
    gpus, batch = 4, cfg.train_dataloader.batch_size
    assert batch == 256
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.momentum, optimizer.nesterov, optimizer.weight_decay) == ('SGD', 0.9, True, 1e-4)
    # lr 0.1 per 256 images, scaled linearly; auto_scale_lr rescales from the same total batch.
    assert optimizer.lr == pytest.approx(0.1 * gpus * batch / 256)
    assert cfg.auto_scale_lr.base_batch_size == gpus * batch
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end <= 5
    assert optimizer.lr * warmup.start_factor == pytest.approx(0.1)  # warms up from the unscaled lr
    assert (steps.type, steps.milestones, steps.gamma) == ('MultiStepLR', [30, 60], 0.1)
    assert cfg.train_cfg.max_epochs == 90
