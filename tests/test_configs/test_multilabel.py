"""The CheXNet-style multi-label configs: DenseNet-121, 1 or 3 channels, 14 sigmoid outputs, BCE loss."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.models.heads import MultiLabelLinearClsHead
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample
from PIL import Image

from mmdensenet.models import DenseNet

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'multilabel'
CHANNELS = {'': 1, '-rgb': 3}


def load(variant: str) -> Config:
    return Config.fromfile(CONFIGS / f'densenet121_chexnet-style_multilabel{variant}.py')


@pytest.mark.parametrize('variant', CHANNELS, ids=['grey', 'rgb'])
def test_densenet121_from_imagenet_with_14_sigmoid_outputs_and_bce(variant: str, one_thread: None) -> None:
    cfg = load(variant)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='torchvision://densenet121')
    init_default_scope('mmpretrain')
    model = MODELS.build({**cfg.model, 'data_preprocessor': cfg.data_preprocessor}).eval()
    assert isinstance(model.backbone, DenseNet) and model.backbone.out_channels == (1024,)
    assert [len(stage.block) for stage in model.backbone.stages] == [6, 12, 24, 16]  # DenseNet-121's blocks
    assert isinstance(model.head, MultiLabelLinearClsHead) and model.head.fc.out_features == 14
    channels = CHANNELS[variant]
    assert model.backbone.stem[0].in_channels == len(cfg.data_preprocessor.mean) == channels

    images = torch.rand(2, channels, 64, 64)
    labels = [[0, 13], []]
    samples = [DataSample().set_gt_label(label) for label in labels]
    with torch.no_grad():
        logits = model(images, mode='tensor')
        loss = model(images, samples, mode='loss')['loss']
        scores = torch.stack([s.pred_score for s in model(images, mode='predict')])
    targets = torch.zeros(2, 14)
    targets[0, [0, 13]] = 1
    # mmpretrain's multi-label loss: binary cross-entropy summed over the findings, averaged over the images.
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, targets, reduction='sum') / 2)
    torch.testing.assert_close(scores, torch.sigmoid(logits))


@pytest.mark.parametrize('variant', CHANNELS, ids=['grey', 'rgb'])
def test_pipelines_give_a_grey_file_the_configs_channels(variant: str, tmp_path: Path) -> None:
    image = tmp_path / 'xray.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 250), dtype=np.uint8), mode='L').save(image)
    cfg = load(variant)
    init_default_scope('mmpretrain')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = Compose([TRANSFORMS.build(t) for t in cfg[loader].dataset.pipeline])
        inputs = pipeline(dict(img_path=str(image)))['inputs']
        assert tuple(inputs.shape) == (CHANNELS[variant], 224, 224), loader
        assert (inputs == inputs[:1]).all()  # the grey values, in every channel


def test_evaluates_precision_recall_map_and_our_auroc() -> None:
    cfg = load('')
    assert cfg.val_dataloader.dataset.type == cfg.test_dataloader.dataset.type == 'MultiLabelDataset'
    assert [m['type'] for m in cfg.test_evaluator] == ['MultiLabelMetric', 'AveragePrecision', 'mmdensenet.AUROC']
    assert cfg.param_scheduler.monitor == 'auroc/mean'
