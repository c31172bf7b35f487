"""The fine-tuning configs: the table's or torchvision's backbone, a new head, a slower backbone."""

from pathlib import Path

import pytest
import torch
import torchvision
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from tests.weight_helpers import (
    TORCHVISION_FILES,
    assert_same_logits,
    mmpretrain_classifier,
    published_layout,
    randomize_batchnorm,
    table_checkpoint_urls,
    use_download_cache,
)

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'finetune'
IN1K = CONFIGS / 'densenet121_in1k-pre_1xb32-30e_custom.py'
TORCHVISION = CONFIGS / 'densenet121_torchvision-pre_1xb32-30e_custom.py'


def build(path: Path, **backbone) -> torch.nn.Module:
    cfg = Config.fromfile(path)
    cfg.model.backbone.update(backbone)
    init_default_scope('mmpretrain')
    return MODELS.build({**cfg.model, 'data_preprocessor': cfg.data_preprocessor})


def fresh_head(model: torch.nn.Module) -> None:
    """A 10-class head, as mmpretrain's LinearClsHead initialises it: weights N(0, 0.01), biases 0."""
    weight, bias = model.head.fc.weight, model.head.fc.bias
    assert weight.shape == (10, 1024)
    assert 0.005 < weight.std().item() < 0.015 and not bias.any()


@pytest.mark.parametrize('config', [IN1K, TORCHVISION], ids=['table', 'torchvision'])
def test_the_backbone_loads_from_an_imagenet_classifier_and_the_head_starts_fresh(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    cache = use_download_cache(monkeypatch, tmp_path)
    if config == IN1K:
        source = mmpretrain_classifier('121')  # a 1000-class head beside the backbone, as the table's file
        name = table_checkpoint_urls()['121'].split('/')[-1]
        torch.save({'meta': {'mmcls_version': '0.23.0'}, 'state_dict': source.state_dict()}, cache / name)
        features = lambda images: source.backbone(images)[-1]  # noqa: E731
    else:
        source = randomize_batchnorm(torchvision.models.densenet121())
        torch.save(published_layout(source.state_dict()), cache / TORCHVISION_FILES['121'])
        features = lambda images: torch.relu(source.features(images))  # noqa: E731

    model = build(config)
    model.init_weights()

    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_same_logits(model.eval().backbone(images)[-1], features(images))
    fresh_head(model)


def test_the_backbone_learns_at_a_tenth_of_the_heads_lr_and_stages_can_freeze() -> None:
    cfg = Config.fromfile(IN1K)
    with torch.device('meta'):
        model = build(IN1K, init_cfg=None, frozen_stages=2)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    lrs = {id(param): group['lr'] for group in optimizer.param_groups for param in group['params']}
    trained = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    assert {name.split('.')[0] for name, _ in trained} == {'backbone', 'head'}
    for name, param in trained:
        assert lrs[id(param)] == pytest.approx(0.001 if name.startswith('backbone.') else 0.01), name
    trainable = {name.split('.')[1] for name, param in model.named_parameters() if param.requires_grad}
    assert 'stem' not in trainable and not model.backbone.stages[1].block[0].conv1.weight.requires_grad
    assert model.backbone.stages[2].block[0].conv1.weight.requires_grad
