"""The mmsegmentation config of configs/segmentation: DenseNet-121 as Semantic FPN's encoder."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from torch import nn

from mmdensenet.models import DenseNet
from tests.weight_helpers import (
    TORCHVISION_FILES,
    assert_same_logits,
    published_layout,
    randomize_batchnorm,
    table_checkpoint_urls,
)

pytest.importorskip('mmseg', reason='mmsegmentation is not installed')
from mmseg.apis import inference_model
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CONFIG = (
    Path(__file__).resolve().parents[2] / 'configs' / 'segmentation' / 'fpn_densenet121_4xb4-160k_ade20k-512x512.py'
)
NUM_CLASSES = 150  # ADE20K

pytestmark = [pytest.mark.detection, pytest.mark.usefixtures('one_thread')]


@pytest.fixture(scope='module')
def cfg() -> Config:
    return Config.fromfile(CONFIG)


@pytest.fixture(scope='module')
def segmentor(cfg: Config) -> nn.Module:
    """The config's model with random weights, SyncBN turned into BN as mmengine's runner does on one process."""
    model_cfg = copy.deepcopy(cfg.model)
    del model_cfg.backbone.init_cfg  # the backbone's own initialisation instead of a checkpoint
    init_default_scope(cfg.default_scope)
    model = revert_sync_batchnorm(MODELS.build(model_cfg))
    model.init_weights()
    model.cfg = cfg
    return model


def test_config_puts_densenet121_under_semantic_fpn(cfg: Config, segmentor: nn.Module) -> None:
    assert cfg.custom_imports == dict(imports=['mmdensenet'], allow_failed_imports=False)
    assert cfg.model.pretrained is None
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=table_checkpoint_urls()['121'], prefix='backbone.'
    )
    assert isinstance(segmentor.backbone, DenseNet)
    assert list(cfg.model.neck.in_channels) == list(segmentor.backbone.out_channels)


def test_offline_the_encoder_loads_a_torchvision_file(cfg: Config, tmp_path: Path) -> None:
    torchvision_model = randomize_batchnorm(torchvision.models.densenet121())
    path = tmp_path / TORCHVISION_FILES['121']
    torch.save(published_layout(torchvision_model.state_dict()), path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg.checkpoint = str(path)  # as --cfg-options model.backbone.init_cfg.checkpoint=... does
    init_default_scope(cfg.default_scope)
    model = revert_sync_batchnorm(MODELS.build(model_cfg))

    model.init_weights()

    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = torch.relu(torchvision_model.features(images))
        assert_same_logits(model.backbone.eval()(images)[-1], expected)


def test_training_step_reaches_the_encoder(cfg: Config, segmentor: nn.Module) -> None:
    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)))
        labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, (1, 64, 64)))
        labels[:, :8] = 255  # ignored pixels
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    segmentor.train()

    data = segmentor.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    loss, _ = segmentor.parse_losses(segmentor(**data, mode='loss'))
    loss.backward()

    assert data['inputs'].shape == (2, 3, *cfg.crop_size)  # padded to the crop size as in training
    assert torch.isfinite(loss)
    assert all(param.grad is not None for param in segmentor.backbone.parameters())
    optim_wrapper = build_optim_wrapper(segmentor, cfg.optim_wrapper)
    optim_wrapper.step()
    optim_wrapper.zero_grad()


def test_inference_labels_every_pixel(segmentor: nn.Module) -> None:
    image = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)

    result = inference_model(segmentor.eval(), image)

    labels = result.pred_sem_seg.data
    assert labels.shape == (1, 96, 128)
    assert ((labels >= 0) & (labels < NUM_CLASSES)).all()
    assert result.seg_logits.data.shape == (NUM_CLASSES, 96, 128)
