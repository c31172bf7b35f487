"""Key renaming between torchvision's layouts and ours, arch detection and the checks of names, shapes and values."""

import re

import pytest
import torch
import torchvision

from mmdensenet.models.backbones.densenet import DenseNet
from mmdensenet.weights import CheckpointError
from mmdensenet.weights.torchvision_keys import (
    TORCHVISION_ARCHS,
    check_state_dict,
    detect_arch,
    expected_tensors,
    to_our_key,
    to_torchvision_key,
)


def torchvision_state(arch: str) -> dict[str, torch.Tensor]:
    with torch.device('meta'):
        return torchvision.models.get_model(f'densenet{arch}').state_dict()


@pytest.mark.parametrize('arch', TORCHVISION_ARCHS)
def test_every_torchvision_tensor_has_its_place_and_way_back(arch: str) -> None:
    torchvision_tensors = torchvision_state(arch)
    ours = {to_our_key(key): tensor.shape for key, tensor in torchvision_tensors.items()}
    assert ours == {key: tensor.shape for key, tensor in expected_tensors(arch, num_classes=1000).items()}
    assert [to_torchvision_key(key) for key in ours] == list(torchvision_tensors)
    assert detect_arch(ours) == arch


def test_known_keys() -> None:
    pairs = {
        'features.conv0.weight': 'backbone.stem.0.weight',
        'features.norm0.running_var': 'backbone.stem.1.running_var',
        'features.denseblock1.denselayer1.norm1.weight': 'backbone.stages.0.block.0.norm1.weight',
        'features.denseblock3.denselayer24.conv2.weight': 'backbone.stages.2.block.23.conv2.weight',
        'features.transition3.conv.weight': 'backbone.transitions.2.conv.weight',
        'features.norm5.num_batches_tracked': 'backbone.transitions.3.0.num_batches_tracked',
        'classifier.bias': 'head.fc.bias',
    }
    for torchvision_key, our_key in pairs.items():
        assert to_our_key(torchvision_key) == our_key
        assert to_torchvision_key(our_key) == torchvision_key


def test_published_and_data_parallel_layouts() -> None:
    assert to_our_key('features.denseblock2.denselayer10.norm.2.running_mean') == (
        'backbone.stages.1.block.9.norm2.running_mean'
    )
    assert to_our_key('features.denseblock4.denselayer1.conv.1.weight') == 'backbone.stages.3.block.0.conv1.weight'
    assert to_our_key('module.classifier.weight') == 'head.fc.weight'


@pytest.mark.parametrize(
    ('key', 'rename'),
    [('conv1.weight', to_our_key), ('features.block1.weight', to_our_key), ('neck.fc.weight', to_torchvision_key)],
)
def test_foreign_keys_are_refused(key: str, rename) -> None:
    with pytest.raises(CheckpointError, match=re.escape(repr(key))):
        rename(key)


def test_arch_is_detected_from_the_layer_counts() -> None:
    with torch.device('meta'):
        densenet264 = DenseNet('264').state_dict()
    with pytest.raises(CheckpointError, match='dense blocks of 6-12-64-48 layers'):
        detect_arch(f'backbone.{key}' for key in densenet264)
    with pytest.raises(CheckpointError, match='dense blocks of none'):
        detect_arch(['head.fc.weight'])


def test_check_fills_batches_tracked_and_orders_like_the_model() -> None:
    expected = expected_tensors('121', num_classes=10)
    state_dict = {key: torch.ones(t.shape) for key, t in reversed(expected.items()) if 'num_batches' not in key}
    checked = check_state_dict(state_dict, '121', 'c.pth')
    assert list(checked) == list(expected)
    filled = [tensor for key, tensor in checked.items() if key.endswith('num_batches_tracked')]
    assert len(filled) == 121 and all(tensor.dtype == torch.long and tensor.item() == 0 for tensor in filled)


def test_check_names_the_offending_tensor() -> None:
    complete = {key: torch.zeros_like(t, device='cpu') for key, t in expected_tensors('169', num_classes=1000).items()}

    missing = dict(complete)
    del missing['backbone.transitions.1.conv.weight']
    message = 'm.pth does not fit DenseNet-169: 1 tensor missing (features.transition2.conv.weight)'
    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_state_dict(missing, '169', 'm.pth', display_key=to_torchvision_key)

    wrong = {**complete, 'head.fc.bias': torch.zeros(999)}
    message = '(e.g. head.fc.bias: (999,) in the file, (1000,) in DenseNet-169)'
    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_state_dict(wrong, '169', 'w.pth')

    extra = {**complete, 'backbone.stages.3.block.32.conv1.weight': torch.zeros(1)}
    with pytest.raises(
        CheckpointError, match=re.escape('1 tensor unexpected (backbone.stages.3.block.32.conv1.weight)')
    ):
        check_state_dict(extra, '169', 'e.pth')


def test_check_refuses_values_that_cannot_be_the_models() -> None:
    complete = {key: torch.zeros_like(t, device='cpu') for key, t in expected_tensors('121', num_classes=10).items()}
    damaged = {**complete, 'backbone.stages.1.block.2.conv2.weight': torch.full((32, 128, 3, 3), float('nan'))}
    with pytest.raises(CheckpointError, match=re.escape('features.denseblock2.denselayer3.conv2.weight holds NaN')):
        check_state_dict(damaged, '121', 'd.pth', display_key=to_torchvision_key)
    integers = {key: tensor.long() for key, tensor in complete.items()}
    with pytest.raises(CheckpointError, match=re.escape('backbone.stem.0.weight holds int64 values, where the model')):
        check_state_dict(integers, '121', 'i.pth')
    half = {key: tensor.half() if tensor.is_floating_point() else tensor for key, tensor in complete.items()}
    assert check_state_dict(half, '121', 'h.pth')['head.fc.weight'].dtype == torch.float16
