"""docs/coming_from_mmpretrain.md, checked against mmpretrain's own DenseNet and ResNet.

A detection config written for mmpretrain's DenseNet, with only its backbone type switched to ours,
must fail in tools/train.py with one line that points to the README's section of that name, which links the page.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmdet', reason='mmdetection is not installed')
from mmdet.apis import init_detector
from mmdet.models.backbones import ResNet as MMDetResNet
from mmpretrain.models.backbones import DenseNet as MMPretrainDenseNet
from mmpretrain.models.backbones import ResNet as MMPretrainResNet
from torch import nn

from mmdensenet.apis.model import check_channels
from mmdensenet.errors import ToolError
from mmdensenet.models import DenseNet
from tests.weight_helpers import randomize_batchnorm

REPO = Path(__file__).resolve().parents[2]
SECTION = "Coming from mmpretrain's DenseNet"
TINY = dict(growth_rate=8, depths=(1, 2, 2, 1), init_channels=16)

pytestmark = [pytest.mark.usefixtures('one_thread'), pytest.mark.detection]


def documented_differences() -> str:
    return (REPO / 'docs' / 'coming_from_mmpretrain.md').read_text(encoding='utf-8')


def frozen(module: nn.Module) -> bool:
    return all(not param.requires_grad for param in module.parameters())


def test_the_taps_are_those_the_section_gives_and_only_the_last_is_shared() -> None:
    theirs = MMPretrainDenseNet('121', out_indices=[0, 1, 2, 3])
    randomize_batchnorm(theirs)
    ours = DenseNet('121', out_indices=(0, 1, 2, 3))
    ours.load_state_dict(theirs.state_dict(), strict=True)  # the same key layout
    assert theirs.eval() is None and ours.eval() is ours  # mmpretrain's train() returns None
    images = torch.randn(1, 3, 224, 224)

    with torch.no_grad():
        their_taps, our_taps = theirs(images), ours(images)

    def described(taps: tuple[torch.Tensor, ...]) -> str:
        channels = [str(tap.shape[1]) for tap in taps]
        strides = [str(224 // tap.shape[-1]) for tap in taps]
        sizes = [str(tap.shape[-1]) for tap in taps]
        listed = [', '.join(values[:-1]) + ' and ' + values[-1] for values in (channels, strides, sizes)]
        return '{} channels at strides {} ({} px)'.format(*listed)

    assert described(their_taps) == '128, 256, 512 and 1024 channels at strides 8, 16, 32 and 32 (28, 14, 7 and 7 px)'
    assert described(our_taps) == '256, 512, 1024 and 1024 channels at strides 4, 8, 16 and 32 (56, 28, 14 and 7 px)'
    assert described(their_taps) in documented_differences() and described(our_taps) in documented_differences()
    torch.testing.assert_close(our_taps[-1], their_taps[-1], rtol=1e-5, atol=1e-5)
    assert list(ours.out_channels) == [tap.shape[1] for tap in our_taps]


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2])
def test_frozen_stages_follow_the_resnets_not_mmpretrains_densenet(frozen_stages: int) -> None:
    ours = DenseNet(TINY, frozen_stages=frozen_stages)
    our_parts = [frozen(ours.stem), *(frozen(stage) for stage in ours.stages[:3])]
    for resnet in (MMPretrainResNet, MMDetResNet):
        model = resnet(depth=18, frozen_stages=frozen_stages)
        parts = [frozen(model.conv1) and frozen(model.norm1), *(frozen(getattr(model, f'layer{i}')) for i in (1, 2, 3))]
        assert our_parts == parts, resnet.__module__

    theirs = MMPretrainDenseNet(TINY, frozen_stages=frozen_stages)
    their_parts = [frozen(theirs.stem), *(frozen(stage) for stage in theirs.stages[:3])]
    assert not their_parts[0]  # mmpretrain's DenseNet never freezes its stem
    assert their_parts[1:] == our_parts[1:]
    assert (their_parts == our_parts) == (frozen_stages == -1)


@pytest.mark.parametrize(
    ('name', 'key', 'value'), [('bn_size', 'bn_size', 2), ('compression_factor', 'compression', 0.25)]
)
def test_mmpretrains_arguments_are_refused_with_the_key_of_arch_that_replaces_them(
    name: str, key: str, value: float
) -> None:
    with pytest.raises(TypeError, match=rf"{name} is an argument of mmpretrain's DenseNet; .*{key}={value}.*{SECTION}"):
        DenseNet(TINY, **{name: value})
    # The change the section gives builds what mmpretrain builds from the argument.
    theirs = MMPretrainDenseNet(TINY, **{name: value})
    ours = DenseNet(dict(TINY, **{key: value}))
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_invalid_arguments_are_value_errors_where_mmpretrain_asserts() -> None:
    with pytest.raises(AssertionError):
        MMPretrainDenseNet('122')
    with pytest.raises(ValueError, match='arch must be one of'):
        DenseNet('122')


# A RetinaNet config written for mmpretrain's DenseNet-121, as mmdet's ResNet configs are written.
WRITTEN_FOR_MMPRETRAIN = """_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmpretrain.models', 'mmdensenet'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type={type!r}, arch='121', out_indices=(0, 1, 2, 3), frozen_stages=1{extra}),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
"""


def written_for_mmpretrain(path: Path, backbone_type: str, extra: str = '') -> Path:
    path.write_text(WRITTEN_FOR_MMPRETRAIN.format(type=backbone_type, extra=extra))
    return path


def test_a_config_written_for_mmpretrain_runs_on_its_densenet_and_is_refused_on_ours(tmp_path: Path) -> None:
    detector = init_detector(str(written_for_mmpretrain(tmp_path / 'theirs.py', 'mmpretrain.DenseNet')), device='cpu')
    with torch.no_grad():
        features = detector.extract_feat(torch.randn(1, 3, 64, 64))
    assert len(features) == 5  # its FPN takes mmpretrain's taps
    check_channels(detector)  # mmpretrain's DenseNet has no out_channels to check against

    ours = init_detector(str(written_for_mmpretrain(tmp_path / 'ours.py', 'mmdensenet.DenseNet')), device='cpu')
    expected = 'model.neck: in_channels are [128, 256, 512, 1024], but the backbone gives [256, 512, 1024, 1024]'
    with pytest.raises(ToolError, match=re.escape(expected) + f'.*"{SECTION}"'):
        check_channels(ours)


@pytest.mark.parametrize(
    ('extra', 'key', 'expected'),
    [
        ('', 'model.neck', 'in_channels are [128, 256, 512, 1024], but the backbone gives [256, 512, 1024, 1024]'),
        (', bn_size=4, compression_factor=0.5', 'model.backbone', "bn_size is an argument of mmpretrain's DenseNet"),
    ],
    ids=['taps', 'arguments'],
)
def test_train_tool_refuses_it_with_one_line_that_points_to_the_section(
    tmp_path: Path, extra: str, key: str, expected: str
) -> None:
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    assert f'\n## {SECTION}\n' in readme
    assert '(docs/coming_from_mmpretrain.md)' in readme.split(f'\n## {SECTION}\n', 1)[1].split('\n## ', 1)[0]
    config = written_for_mmpretrain(tmp_path / 'ported.py', 'mmdensenet.DenseNet', extra)
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    command = [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(tmp_path / 'run')]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)

    assert result.returncode == 1, result.stderr[-3000:]
    # Above it, stderr may hold the warnings of importing mmdet's configs (pkg_resources' deprecation).
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert result.stderr.strip().endswith(line)
    assert line.startswith(f'error: {key}: ') and expected in line and f'"{SECTION}"' in line, line
    assert not list((tmp_path / 'run').glob('*.pth'))
