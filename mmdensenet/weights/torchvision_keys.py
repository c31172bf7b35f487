"""Key layouts of torchvision's DenseNet and of our classifier, and the checks between them.

torchvision: ``features.{conv0,norm0}``, ``features.denseblock{b}.denselayer{l}.{norm1,conv1,norm2,conv2}``
(published files: ``norm.1``, ``conv.1``, ...), ``features.transition{t}.{norm,conv}``,
``features.norm5``, ``classifier``; numbered from 1.
Ours (mmpretrain's, as in its model zoo): ``backbone.stem.{0,1}``,
``backbone.stages.{b}.block.{l}.*``, ``backbone.transitions.{t}.{norm,conv}``,
``backbone.transitions.3.0`` (the final norm), ``head.fc``; numbered from 0.
"""

import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Optional

import torch

from mmdensenet.models.backbones.densenet import DenseNet

from .checkpoint_io import BACKBONE_PREFIX, DATA_PARALLEL_PREFIX, CheckpointError, StateDict, check_fit

TORCHVISION_ARCHS = ('121', '169', '201', '161')
# (torchvision module, our module); every {field} counts from 1 in torchvision and from 0 here.
# First match wins, so the final norm comes before the transitions it would otherwise match.
MODULE_PAIRS = (
    ('features.conv0', f'{BACKBONE_PREFIX}stem.0'),
    ('features.norm0', f'{BACKBONE_PREFIX}stem.1'),
    ('features.denseblock{block}.denselayer{layer}', f'{BACKBONE_PREFIX}stages.{{block}}.block.{{layer}}'),
    ('features.norm5', f'{BACKBONE_PREFIX}transitions.3.0'),
    ('features.transition{index}', f'{BACKBONE_PREFIX}transitions.{{index}}'),
    ('classifier', 'head.fc'),
)
# torchvision files published before 0.3 name a layer's modules norm.1, conv.1, norm.2, conv.2.
OLD_LAYER_KEY = re.compile(r'(\.denselayer\d+\.(?:norm|conv))\.([12])\.')
# A dense layer's key in our classifier (backbone.stages...) or in a bare backbone (stages...).
LAYER_KEY = re.compile(rf'(?:{re.escape(BACKBONE_PREFIX)})?stages\.(\d+)\.block\.(\d+)\.')


@cache
def _pattern(template: str) -> re.Pattern:
    body = re.escape(template).replace(r'\{', '{').replace(r'\}', '}')
    return re.compile(re.sub(r'{(\w+)}', r'(?P<\1>\\d+)', body) + r'\.(?P<tensor>.+)')


def _rename(key: str, from_torchvision: bool) -> str:
    for torchvision_module, our_module in MODULE_PAIRS:
        source, target = (torchvision_module, our_module) if from_torchvision else (our_module, torchvision_module)
        match = _pattern(source).fullmatch(key)
        if match:
            shift = -1 if from_torchvision else 1
            fields = {name: int(value) + shift for name, value in match.groupdict().items() if name != 'tensor'}
            return f'{target.format(**fields)}.{match["tensor"]}'
    layout = 'torchvision' if from_torchvision else 'mmdensenet/mmpretrain'
    raise CheckpointError(f'{key!r} is not a key of a {layout} DenseNet classifier')


def to_our_key(torchvision_key: str) -> str:
    """Our name of a tensor of torchvision's DenseNet (either of its key layouts)."""
    key = OLD_LAYER_KEY.sub(r'\1\2.', torchvision_key.removeprefix(DATA_PARALLEL_PREFIX))
    return _rename(key, from_torchvision=True)


def to_torchvision_key(our_key: str) -> str:
    """torchvision's (current) name of a tensor of our classifier."""
    return _rename(our_key, from_torchvision=False)


def block_depths(our_keys: Iterable[str]) -> tuple[int, ...]:
    """The number of layers of each dense block that these keys (of our classifier or backbone) name."""
    layers: dict[int, set[int]] = {}
    for key in our_keys:
        match = LAYER_KEY.match(key)
        if match:
            layers.setdefault(int(match[1]), set()).add(int(match[2]))
    return tuple(len(layers.get(block, ())) for block in range(max(layers, default=-1) + 1))


def _torchvision_arch(depths: tuple[int, ...]) -> Optional[str]:
    """The torchvision arch whose dense blocks have ``depths`` layers, if any."""
    return next((arch for arch in TORCHVISION_ARCHS if depths == DenseNet.arch_settings[arch]['depths']), None)


def describe_depths(depths: tuple[int, ...]) -> str:
    """``depths`` in words, naming the arch they make: 'DenseNet-121, dense blocks of 6-12-24-16 layers'."""
    blocks = f'dense blocks of {"-".join(map(str, depths)) or "none"} layers'
    arch = _torchvision_arch(depths)
    return blocks if arch is None else f'DenseNet-{arch}, {blocks}'


def detect_arch(our_keys: Iterable[str]) -> str:
    """The torchvision arch whose dense blocks have as many layers as these keys name."""
    depths = block_depths(our_keys)
    arch = _torchvision_arch(depths)
    if arch is None:
        raise CheckpointError(f'not a DenseNet-{"/".join(TORCHVISION_ARCHS)}: {describe_depths(depths)}')
    return arch


def expected_tensors(arch: str, num_classes: int) -> StateDict:
    """The tensors of our classifier for ``arch`` (on the meta device: shapes and dtypes), in state-dict order."""
    with torch.device('meta'):
        backbone = DenseNet(arch)
        channels = backbone.feature_info[-1]['num_chs']
        head = {'head.fc.weight': torch.empty(num_classes, channels), 'head.fc.bias': torch.empty(num_classes)}
    return {**{f'{BACKBONE_PREFIX}{key}': tensor for key, tensor in backbone.state_dict().items()}, **head}


def check_state_dict(
    state_dict: StateDict, arch: str, source: str, display_key: Callable[[str], str] = str
) -> StateDict:
    """Checks ``source``'s tensors against our classifier for ``arch`` (:func:`check_fit`) and orders them like it."""
    num_classes = state_dict['head.fc.weight'].shape[0] if 'head.fc.weight' in state_dict else 1000
    return check_fit(state_dict, expected_tensors(arch, num_classes), source, f'DenseNet-{arch}', display_key)
