"""The table's checkpoints (mmpretrain's layout) need no conversion; ours go back to torchvision."""

import re
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from mmengine.runner import load_checkpoint

from mmdensenet.errors import ToolError
from mmdensenet.weights import CheckpointError, from_torchvision, to_torchvision
from tests.weight_helpers import REPO, assert_same_logits, build_config_classifier, logits, mmpretrain_classifier

CHANNELS = {'121': 1024, '169': 1664, '201': 1920, '161': 2208}


# Files converted from torchvision's may lack num_batches_tracked; BatchNorm then assumes 0.
@pytest.mark.parametrize(('arch', 'with_batches_tracked'), [('121', False), ('161', True)])
def test_table_checkpoints_load_strictly_with_mmpretrain_logits(
    arch: str, with_batches_tracked: bool, tmp_path: Path
) -> None:
    theirs = mmpretrain_classifier(arch)
    state_dict = {k: v for k, v in theirs.state_dict().items() if with_batches_tracked or 'num_batches' not in k}
    path = tmp_path / f'densenet{arch}_4xb256_in1k_20220426-00000000.pth'
    torch.save({'meta': {'mmcls_version': '0.23.0'}, 'state_dict': state_dict}, path)

    ours = build_config_classifier(arch)
    load_checkpoint(ours, str(path), map_location='cpu', strict=True)
    images = torch.randn(1, 3, 224, 224)
    expected = logits(theirs, images)
    assert_same_logits(logits(ours, images), expected)

    torchvision_path = tmp_path / f'densenet{arch}_tv.pth'
    conversion = to_torchvision(str(path), str(torchvision_path), arch=arch)
    assert (conversion.arch, conversion.tensors) == (arch, len(ours.state_dict()))
    assert conversion.filled == len(ours.state_dict()) - len(state_dict)
    with torch.device('meta'):
        torchvision_model = torchvision.models.get_model(f'densenet{arch}')
    torchvision_model.load_state_dict(torch.load(torchvision_path, weights_only=True), strict=True, assign=True)
    assert_same_logits(logits(torchvision_model.eval(), images), expected)


def test_conversions_report_what_they_wrote(tmp_path: Path) -> None:
    src = tmp_path / 'densenet169-b2777c0a.pth'
    torch.save(torchvision.models.densenet169().state_dict(), src)
    conversion = from_torchvision(str(src), str(tmp_path / 'out.pth'))
    assert (conversion.arch, conversion.filled, conversion.output) == ('169', 0, str(tmp_path / 'out.pth'))
    assert conversion.summary().splitlines()[0] == 'arch: DenseNet-169'
    with pytest.raises(CheckpointError, match=r'densenet169-b2777c0a.pth: it holds DenseNet-169, not the requested'):
        from_torchvision(str(src), str(tmp_path / 'other.pth'), arch='201')
    with pytest.raises(ToolError, match='is a directory'):
        from_torchvision(str(src), str(tmp_path))


def test_metafile_lists_the_table_checkpoints_as_the_configs_weights() -> None:
    models = yaml.safe_load((REPO / 'configs' / 'metafile.yml').read_text())['Models']
    weights = {model['Config']: model['Weights'] for model in models}
    for arch in CHANNELS:
        config = f'configs/densenet{arch}_4xb256_in1k.py'
        assert re.fullmatch(
            rf'https://download\.openmmlab\.com/mmclassification/v0/densenet/densenet{arch}_4xb256_in1k_20220426-\w{{8}}\.pth',
            weights[config],
        ), config
