"""The mmdetection configs of configs/detection, through mmdet's own APIs too, and the docs' own-config example.

The detectors train through mmdet's own data pipeline on a tiny COCO-format dataset that the
tests write: four images with two filled rectangles each, boxes and polygons in a json.
"""

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import torchvision

pytest.importorskip('mmdet', reason='mmdetection is not installed')
from mmdet.apis import DetInferencer, inference_detector, init_detector
from mmdet.datasets import CocoDataset
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmdensenet.models import DenseNet
from mmdensenet.weights import load_pretrained
from tests.cli_helpers import assert_one_line_error, run_tool
from tests.weight_helpers import (
    TORCHVISION_FILES,
    assert_same_logits,
    mmpretrain_classifier,
    published_layout,
    randomize_batchnorm,
    table_checkpoint_urls,
    use_download_cache,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / 'configs' / 'detection').glob('*.py'))
CONFIG_IDS = [path.stem for path in CONFIGS]
RETINANET = ROOT / 'configs' / 'detection' / 'retinanet_densenet121_fpn_1x_coco.py'
TINY_ARCH = dict(growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)
IMAGE_WIDTH, IMAGE_HEIGHT = 160, 120
TEST_SCALE = (128, 128)  # images shrink to 128 x 96
# Where mmdet 3.3.0's COCO pipelines resize (train: load, annotations, resize; test: load, resize).
RESIZE_STEP = dict(train=2, val=1, test=1)
LOAD_WARNINGS = ('missing keys', 'unexpected key', 'do not match')

pytestmark = [pytest.mark.detection, pytest.mark.usefixtures('one_thread')]


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Writes four images and a COCO annotation file with boxes and polygons of two classes."""
    root = tmp_path_factory.mktemp('coco')
    (root / 'images').mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id in range(1, 5):
        image = rng.integers(0, 80, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
        for category_id, color, left in ((1, (40, 200, 240), 8), (2, (230, 90, 30), 84)):
            x, y = left + int(rng.integers(0, 12)), int(rng.integers(8, 40))
            w, h = int(rng.integers(40, 64)), int(rng.integers(40, 70))
            image[y : y + h, x : x + w] = color
            polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=category_id,
                    bbox=[x, y, w, h],
                    area=w * h,
                    segmentation=[polygon],
                    iscrowd=0,
                )
            )
        file_name = f'{image_id:04d}.png'
        cv2.imwrite(str(root / 'images' / file_name), image)
        images.append(dict(id=image_id, file_name=file_name, width=IMAGE_WIDTH, height=IMAGE_HEIGHT))
    # COCO's 80 classes, as the configs' heads and evaluator expect; the images show the first two.
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CocoDataset.METAINFO['classes'])]
    coco = dict(images=images, annotations=annotations, categories=categories)
    (root / 'annotations.json').write_text(json.dumps(coco))
    return root


def tiny_data_options(coco_root: Path) -> dict[str, Any]:
    """``--cfg-options`` that point a COCO config at the tiny dataset, with small images."""
    options: dict[str, Any] = {}
    for split, resize_step in RESIZE_STEP.items():
        loader = f'{split}_dataloader'
        options |= {
            f'{loader}.num_workers': 0,
            f'{loader}.persistent_workers': False,
            f'{loader}.dataset.data_root': str(coco_root),
            f'{loader}.dataset.ann_file': 'annotations.json',
            f'{loader}.dataset.data_prefix.img': 'images/',
            f'{loader}.dataset.pipeline.{resize_step}.scale': TEST_SCALE,
        }
    for evaluator in ('val_evaluator', 'test_evaluator'):
        options[f'{evaluator}.ann_file'] = str(coco_root / 'annotations.json')
    return options


def load_config(path: Path, coco_root: Path, work_dir: Path) -> Config:
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(tiny_data_options(coco_root) | {'work_dir': str(work_dir)})
    for split, resize_step in RESIZE_STEP.items():
        assert cfg[f'{split}_dataloader'].dataset.pipeline[resize_step].type == 'Resize'
    return cfg


def use_tiny_backbone(cfg: Config) -> None:
    """A small DenseNet with random weights, and the FPN's inputs to match."""
    backbone = cfg.model.backbone
    backbone.arch = TINY_ARCH
    del backbone.init_cfg  # the backbone's own initialisation instead of a checkpoint
    cfg.model.neck.in_channels = list(DenseNet(arch=TINY_ARCH, out_indices=backbone.out_indices).out_channels)


def keep_every_prediction(cfg: Config) -> None:
    """An untrained detector scores below the configs' threshold of 0.05; keep its boxes anyway."""
    test_cfg = cfg.model.test_cfg
    (test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg).score_thr = 0.0


def build_detector(cfg: Config) -> nn.Module:
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


def torchvision_file(arch: str, folder: Path) -> tuple[Path, nn.Module]:
    """torchvision's DenseNet (random weights) saved as torchvision publishes it, under the published name."""
    model = randomize_batchnorm(getattr(torchvision.models, f'densenet{arch}')())
    path = folder / TORCHVISION_FILES[arch]
    torch.save(published_layout(model.state_dict()), path)
    return path, model


@pytest.fixture(scope='module')
def densenet121_torchvision_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    return torchvision_file('121', tmp_path_factory.mktemp('checkpoints'))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def mmengine_log() -> Iterator[list[str]]:
    """Messages that mmengine logs through its current logger during the test."""
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def assert_boxes_with_scores(result: Any) -> None:
    predictions = result.pred_instances
    num_boxes = len(predictions.scores)
    assert num_boxes > 0
    assert predictions.bboxes.shape == (num_boxes, 4)
    assert ((predictions.scores >= 0) & (predictions.scores <= 1)).all()
    assert ((predictions.labels >= 0) & (predictions.labels < len(CocoDataset.METAINFO['classes']))).all()
    boxes = predictions.bboxes
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    # Boxes come back in the original image's coordinates, not the resized input's.
    assert result.ori_shape == (IMAGE_HEIGHT, IMAGE_WIDTH)
    assert result.img_shape == (96, 128)
    assert (boxes >= -1e-3).all() and (boxes[:, 2] <= IMAGE_WIDTH + 1e-3).all()
    assert (boxes[:, 3] <= IMAGE_HEIGHT + 1e-3).all()


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
def test_shipped_config_builds_densenet121_with_matching_fpn(config: Path) -> None:
    cfg = Config.fromfile(config)
    assert cfg.custom_imports == dict(imports=['mmdensenet'], allow_failed_imports=False)
    backbone_cfg = cfg.model.backbone
    assert (backbone_cfg.type, backbone_cfg.arch) == ('mmdensenet.DenseNet', '121')
    assert (backbone_cfg.frozen_stages, backbone_cfg.norm_eval) == (1, True)
    assert backbone_cfg.init_cfg == dict(
        type='Pretrained', checkpoint=table_checkpoint_urls()['121'], prefix='backbone.'
    )
    detector = build_detector(cfg)
    assert isinstance(detector.backbone, DenseNet)
    assert list(cfg.model.neck.in_channels) == list(detector.backbone.out_channels)

    detector.eval()
    with torch.no_grad():
        features = detector.extract_feat(torch.randn(1, 3, 64, 64))
    assert len(features) == cfg.model.neck.num_outs
    assert all(feature.shape[1] == cfg.model.neck.out_channels for feature in features)


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
def test_training_iterations_on_tiny_coco(config: Path, coco_root: Path, tmp_path: Path) -> None:
    cfg = load_config(config, coco_root, tmp_path)
    use_tiny_backbone(cfg)
    keep_every_prediction(cfg)
    # mmdet warms the rate up over 500 iterations; a cold start at the configs' 0.02 can overshoot.
    cfg.optim_wrapper.optimizer.lr = 0.005
    if 'rcnn' in cfg.model.train_cfg:
        cfg.model.train_cfg.rcnn.sampler.num = 32  # RoIs per image: the 512 of the configs are slow on CPU
    detector = build_detector(cfg)
    detector.init_weights()
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader)))
    assert [sample.img_shape for sample in batch['data_samples']] == [(96, 128)] * 2
    optim_wrapper = build_optim_wrapper(detector, cfg.optim_wrapper)

    detector.train()
    backbone = detector.backbone
    norms = [module for module in backbone.modules() if isinstance(module, _BatchNorm)]
    assert norms and not any(norm.training for norm in norms)
    assert detector.neck.training
    frozen = [backbone.stem, backbone.stages[0], backbone.transitions[0]]
    trainable = [*backbone.stages[1:], *backbone.transitions[1:]]
    frozen_before = [param.clone() for module in frozen for param in module.parameters()]
    statistics_before = [norm.running_mean.clone() for norm in norms]

    data = detector.data_preprocessor(batch, True)
    loss, _ = detector.parse_losses(detector(**data, mode='loss'))
    loss.backward()
    assert all(param.grad is None for module in frozen for param in module.parameters())
    trainable_params = [param for module in trainable for param in module.parameters()]
    assert all(param.grad is not None and param.grad.abs().sum() > 0 for param in trainable_params)
    optim_wrapper.zero_grad()

    losses = [detector.train_step(batch, optim_wrapper)['loss'].item() for _ in range(5)]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses
    frozen_after = [param for module in frozen for param in module.parameters()]
    assert all(torch.equal(before, after) for before, after in zip(frozen_before, frozen_after))
    assert all(torch.equal(before, norm.running_mean) for before, norm in zip(statistics_before, norms))

    detector.cfg = cfg
    result = inference_detector(detector.eval(), str(coco_root / 'images' / '0001.png'))
    assert_boxes_with_scores(result)
    if 'mask_head' in cfg.model.get('roi_head', {}):
        assert result.pred_instances.masks.shape[1:] == (IMAGE_HEIGHT, IMAGE_WIDTH)


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
def test_mmdet_apis_load_a_detector_checkpoint_and_detect(config: Path, tmp_path: Path) -> None:
    """mmdet's init_detector and inference_detector, as its docs use them, on the config as shipped."""
    trained = build_detector(Config.fromfile(config))
    randomize_batchnorm(trained.backbone)
    classes = ('square', 'circle')
    checkpoint = tmp_path / 'detector.pth'
    torch.save(dict(state_dict=trained.state_dict(), meta=dict(dataset_meta=dict(classes=classes))), checkpoint)

    detector = init_detector(str(config), str(checkpoint), device='cpu')

    assert isinstance(detector.backbone, DenseNet) and not detector.training
    assert detector.dataset_meta['classes'] == classes
    loaded = detector.state_dict()
    assert loaded.keys() == trained.state_dict().keys()
    assert all(torch.equal(loaded[key], value) for key, value in trained.state_dict().items())
    image = np.random.default_rng(0).integers(0, 256, (IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
    result = inference_detector(detector, image)
    # mmdet's test pipeline scales the image to 1333 x 800 and the boxes back to the image.
    assert (result.ori_shape, result.img_shape) == ((IMAGE_HEIGHT, IMAGE_WIDTH), (800, 1067))
    boxes = result.pred_instances.bboxes
    assert boxes.shape[1] == 4 and len(result.pred_instances.scores) == len(boxes) <= 100
    assert (boxes >= -1e-3).all() and (boxes[:, 2] <= IMAGE_WIDTH + 1e-3).all()
    assert (boxes[:, 3] <= IMAGE_HEIGHT + 1e-3).all()


def test_mmdet_inferencer_detects_in_an_image_file(coco_root: Path, tmp_path: Path) -> None:
    """mmdet's DetInferencer, given the config's path and a checkpoint, draws and saves its predictions."""
    trained = build_detector(Config.fromfile(RETINANET))
    checkpoint = tmp_path / 'detector.pth'
    meta = dict(dataset_meta=dict(classes=CocoDataset.METAINFO['classes']))
    torch.save(dict(state_dict=trained.state_dict(), meta=meta), checkpoint)
    inferencer = DetInferencer(model=str(RETINANET), weights=str(checkpoint), device='cpu')
    assert isinstance(inferencer.model.backbone, DenseNet)
    assert torch.equal(inferencer.model.backbone.stem[0].weight, trained.backbone.stem[0].weight)

    results = inferencer(str(coco_root / 'images' / '0001.png'), out_dir=str(tmp_path / 'out'), no_save_pred=False)

    (prediction,) = results['predictions']
    assert 0 < len(prediction['bboxes']) == len(prediction['scores']) == len(prediction['labels']) <= 100
    assert json.loads((tmp_path / 'out' / 'preds' / '0001.json').read_text())['bboxes'] == prediction['bboxes']
    drawing = cv2.imread(str(tmp_path / 'out' / 'vis' / '0001.png'))
    assert drawing.shape == (IMAGE_HEIGHT, IMAGE_WIDTH, 3)


def assert_loaded_cleanly(log: str, checkpoint: object) -> None:
    """The log shows every tensor of the backbone loaded from ``checkpoint`` and no complaint about keys."""
    assert re.search(rf'loaded all \d+ tensors of the backbone from {re.escape(str(checkpoint))} \(', log), log[-3000:]
    assert not [warning for warning in LOAD_WARNINGS if warning in log]


def last_tap(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    backbone.eval()  # mmpretrain's DenseNet.train() returns None, not the module
    with torch.no_grad():
        return backbone(images)[-1]


def test_shipped_config_loads_the_table_checkpoint_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mmengine_log: list[str]
) -> None:
    url = table_checkpoint_urls()['121']
    classifier = mmpretrain_classifier('121')
    cached = use_download_cache(monkeypatch, tmp_path) / url.split('/')[-1]
    torch.save({'meta': {'mmcls_version': '0.23.0'}, 'state_dict': classifier.state_dict()}, cached)
    detector = build_detector(Config.fromfile(RETINANET))

    detector.init_weights()

    images = torch.randn(1, 3, 64, 64)
    assert_same_logits(last_tap(detector.backbone, images), last_tap(classifier.backbone, images))
    assert_loaded_cleanly('\n'.join(mmengine_log), url)


def test_offline_a_torchvision_file_loads_without_conversion(
    densenet121_torchvision_file: tuple[Path, nn.Module], mmengine_log: list[str]
) -> None:
    path, torchvision_model = densenet121_torchvision_file
    cfg = Config.fromfile(RETINANET)
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': str(path)})  # as --cfg-options does
    detector = build_detector(cfg)

    detector.init_weights()

    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = torch.relu(torchvision_model.features(images))
    assert_same_logits(last_tap(detector.backbone, images), expected)
    assert_loaded_cleanly('\n'.join(mmengine_log), path)


def documented_detection_config() -> str:
    """The Python block of the docs' section on one's own detection config."""
    page = (ROOT / 'docs' / 'detection_and_segmentation.md').read_text(encoding='utf-8')
    section = page.split('## Your own detection config', 1)[1]
    return re.search(r'```python\n(.*?)```', section, re.DOTALL).group(1)


def test_own_config_trains_and_predicts(coco_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / 'retinanet_densenet_fpn_1x_tiny.py'
    config.write_text(documented_detection_config())
    cfg = load_config(config, coco_root, tmp_path / 'work_dir')
    checkpoint = cfg.model.backbone.init_cfg.checkpoint
    assert checkpoint == f'torchvision://densenet{cfg.model.backbone.arch}'
    torchvision_file(cfg.model.backbone.arch, use_download_cache(monkeypatch, tmp_path))
    cfg.merge_from_dict({'train_cfg.max_epochs': 1, 'default_hooks.logger.interval': 1})
    keep_every_prediction(cfg)

    runner = Runner.from_cfg(cfg)
    detector = runner.train()

    assert runner.iter == 2  # four images, two per batch, one epoch
    assert np.isfinite(runner.message_hub.get_scalar('train/loss').current())
    assert 'val/coco/bbox_mAP' in runner.message_hub.log_scalars
    assert_loaded_cleanly(Path(runner.log_dir, f'{runner.timestamp}.log').read_text(), checkpoint)
    detector.cfg = cfg
    assert_boxes_with_scores(inference_detector(detector, str(coco_root / 'images' / '0002.png')))


def run_mim(command: str, work_dir: Path, *args: str, options: dict[str, Any]) -> str:
    """Runs ``mim <command> mmdet`` on the shipped RetinaNet config; returns the run's log."""
    cli = [sys.executable, '-m', 'mim', command, 'mmdet', str(RETINANET), *args, '--gpus', '0']
    cli += ['--work-dir', str(work_dir), '--cfg-options', *(f'{key}={value}' for key, value in options.items())]
    # The checkout's mmdensenet, whatever version is installed.
    env = {
        **os.environ,
        'OMP_NUM_THREADS': '1',
        'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
    }
    completed = subprocess.run(cli, capture_output=True, text=True, cwd=work_dir.parent, env=env, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (log_file,) = work_dir.glob('*/*.log')
    return log_file.read_text()


def test_a_mistake_in_a_detection_config_is_one_line(tmp_path: Path) -> None:
    """Its mmdet:: bases are found through pkg_resources, whose deprecation warning must not show above it."""
    result = run_tool('train.py', RETINANET, '--work-dir', tmp_path, '--cfg-options', 'model.backbone.arch=999')
    assert_one_line_error(result, "error: model.backbone: arch must be one of ['121', ")


def test_mim_train_and_test_a_shipped_config(
    coco_root: Path, densenet121_torchvision_file: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    torchvision_weights, _ = densenet121_torchvision_file
    options = tiny_data_options(coco_root) | {
        'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 1,
        'model.backbone.init_cfg.checkpoint': str(torchvision_weights),  # the docs' offline way
        'model.test_cfg.score_thr': 0.0,  # so that the untrained detector has boxes to evaluate
    }
    train_log = run_mim('train', tmp_path / 'train', options=options)

    assert 'Epoch(train) [1][2/2]' in train_log
    assert_loaded_cleanly(train_log, torchvision_weights)
    assert 'coco/bbox_mAP' in train_log
    checkpoint = tmp_path / 'train' / 'epoch_1.pth'
    assert checkpoint.is_file()
    # The detector's own checkpoint gives a backbone its weights too.
    backbone = DenseNet('121')
    assert load_pretrained(backbone, str(checkpoint), 'backbone.') == 'classifier or detector (backbone.*)'
    trained = torch.load(checkpoint)['state_dict']
    assert all(torch.equal(trained[f'backbone.{key}'], value) for key, value in backbone.state_dict().items())

    test_log = run_mim('test', tmp_path / 'test', '--checkpoint', str(checkpoint), options=options)

    assert f'Load checkpoint from {checkpoint}' in test_log
    assert re.search(r'Epoch\(test\) \[4/4\].*coco/bbox_mAP: \d', test_log)
