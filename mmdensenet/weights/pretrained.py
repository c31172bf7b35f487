"""Pretrained weights for a DenseNet backbone, from a checkpoint in any of the layouts it comes in.

``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` on ``mmdensenet.DenseNet`` loads
through :func:`load_pretrained` (see ``DenseNet.init_weights``). mmengine's own ``Pretrained``
copies the tensors whose names happen to match and only logs the rest, so a torchvision file
would leave the backbone random; and it reads downloads with ``weights_only=False``. Here the
tensors are renamed with the converter's mapping, every one is checked and all load, or none
do and the error says why.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner.checkpoint import get_torchvision_models
from torch import nn

from .checkpoint_io import (
    BACKBONE_PREFIX,
    DATA_PARALLEL_PREFIX,
    CheckpointError,
    StateDict,
    cached_download,
    check_fit,
    errors_about,
    is_url,
    name_some,
    read_checkpoint,
    unwrap_state_dict,
)
from .torchvision_keys import OLD_LAYER_KEY, block_depths, describe_depths, to_our_key, to_torchvision_key

TORCHVISION_SCHEME = 'torchvision://'
BACKBONE_MODULES = ('stem.', 'stages.', 'transitions.')

InitCfg = Optional[Union[dict, list[dict]]]


class Found(NamedTuple):
    """The backbone's tensors in a checkpoint: its layout, the tensors under our names, and their names in the file."""

    layout: str
    tensors: StateDict
    name_in_file: Callable[[str], str]


class PretrainedDenseNet:
    """The mmengine initializer that a ``Pretrained`` init_cfg of ``mmdensenet.DenseNet`` becomes.

    Args:
        checkpoint: See :func:`load_pretrained`.
        prefix: See :func:`load_pretrained`.
        map_location: Accepted as mmengine's ``Pretrained`` takes it. The tensors are read to the
            CPU and copied into the backbone wherever it is, where mmengine's would end up too.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None, map_location: Any = 'cpu') -> None:
        self.checkpoint, self.prefix = checkpoint, prefix

    def __call__(self, module: nn.Module) -> None:
        layout = load_pretrained(module, self.checkpoint, self.prefix)
        if hasattr(module, '_params_init_info'):  # what mmengine's init log says of each parameter
            update_init_info(module, init_info=f'loaded from {self.checkpoint} ({layout})')


def with_our_loader(init_cfg: InitCfg) -> list[dict]:
    """``init_cfg`` with its ``Pretrained`` entries last, where mmengine applies them, loading through ours."""
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg or [])
    pretrained = [cfg for cfg in cfgs if cfg.get('type') in ('Pretrained', PretrainedInit)]
    others = [cfg for cfg in cfgs if cfg not in pretrained]
    return others + [{**cfg, 'type': PretrainedDenseNet} for cfg in pretrained]


def torchvision_url(name: str) -> str:
    """The URL of torchvision's weights ``torchvision://<name>``, from mmengine's table of them."""
    urls = get_torchvision_models()
    if name not in urls:
        densenets = ', '.join(f'{TORCHVISION_SCHEME}{key}' for key in sorted(urls) if key.startswith('densenet'))
        raise CheckpointError(f'{TORCHVISION_SCHEME}{name} names no torchvision weights; DenseNet ones: {densenets}')
    return urls[name]


def local_file(checkpoint: str) -> Path:
    """The file of a checkpoint given as a path, an http(s) URL or ``torchvision://<name>``."""
    if checkpoint.startswith(TORCHVISION_SCHEME):
        return cached_download(torchvision_url(checkpoint.removeprefix(TORCHVISION_SCHEME)))
    if is_url(checkpoint):
        return cached_download(checkpoint)
    if '://' in checkpoint:
        raise CheckpointError(
            f'{checkpoint}: DenseNet weights are read from a local file, an http(s) URL or torchvision://<name>; '
            'download the file and give its path'
        )
    return Path(checkpoint).expanduser()


def _under(state_dict: StateDict, prefix: str) -> StateDict:
    return {key.removeprefix(prefix): tensor for key, tensor in state_dict.items() if key.startswith(prefix)}


def _carries(state_dict: StateDict, prefix: Union[str, tuple[str, ...]]) -> bool:
    return any(key.startswith(prefix) for key in state_dict)


def find_backbone(state_dict: StateDict, prefix: Optional[str], meta: Mapping[str, Any]) -> Found:
    """Recognises the layout of a checkpoint's tensors and takes the backbone's out of them.

    Layouts: torchvision's classifier (current or published key names), a classifier or detector
    of ours or mmpretrain's (``backbone.*``; the converter writes this), or a bare backbone.
    ``prefix`` (mmengine's: the sub-module to take) applies when the keys carry it.
    """
    state_dict = (
        _under(state_dict, DATA_PARALLEL_PREFIX)
        if all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict)
        else state_dict
    )
    outer = ''
    if prefix and prefix != BACKBONE_PREFIX and _carries(state_dict, prefix):
        state_dict, outer = _under(state_dict, prefix), prefix
    where = f' under {outer!r}' if outer else ''
    if _carries(state_dict, 'features.'):
        published = any(OLD_LAYER_KEY.search(key) for key in state_dict)
        names = ' with the published names (norm.1, conv.1)' if published else ''
        renamed = {to_our_key(key): tensor for key, tensor in state_dict.items()}
        return Found(
            f'torchvision DenseNet{names}{where}',
            _under(renamed, BACKBONE_PREFIX),
            lambda key: outer + to_torchvision_key(BACKBONE_PREFIX + key),
        )
    if _carries(state_dict, BACKBONE_PREFIX):
        if meta.get('converted_from') == 'torchvision':
            layout = f"mmdensenet's conversion of {meta.get('source', 'a torchvision file')}"
        else:
            layout = 'classifier or detector (backbone.*)'
        return Found(
            f'{layout}{where}', _under(state_dict, BACKBONE_PREFIX), lambda key: f'{outer}{BACKBONE_PREFIX}{key}'
        )
    if _carries(state_dict, BACKBONE_MODULES):
        return Found(f'backbone (stem.*, stages.*, transitions.*){where}', state_dict, lambda key: outer + key)
    return Found(f'unrecognised, with keys such as {name_some(list(state_dict), repr)}', state_dict, str)


def load_pretrained(backbone: nn.Module, checkpoint: str, prefix: Optional[str] = None) -> str:
    """Loads all of a DenseNet backbone's tensors from ``checkpoint``, or raises CheckpointError.

    Args:
        backbone: The backbone to load into.
        checkpoint: A file, an http(s) URL (cached where mmengine caches downloads) or
            ``torchvision://densenet121`` (``169``, ``201``, ``161``), read weights-only.
        prefix: The sub-module to take (``'backbone.'`` of a detector), where the keys carry it.

    Returns:
        The layout that was found.

    Raises:
        CheckpointError: The file cannot be read weights-only, or its tensors do not fit: the
            message names the checkpoint, the layout found and the first missing tensors.
    """
    if prefix and not prefix.endswith('.'):
        prefix += '.'  # as mmengine does
    loaded, _ = read_checkpoint(str(local_file(checkpoint)))
    state_dict = unwrap_state_dict(loaded, checkpoint)
    meta = loaded.get('meta') if isinstance(loaded.get('meta'), Mapping) else {}
    with errors_about(checkpoint):
        found = find_backbone(state_dict, prefix, meta)
    expected = backbone.state_dict()
    depths = block_depths(expected)
    owner = f'the backbone ({describe_depths(depths)})'
    source = f'{checkpoint} ({found.layout})'
    with errors_about(source):
        if not found.tensors.keys() & expected.keys():
            first = name_some(list(expected), found.name_in_file)
            raise CheckpointError(f'it holds none of the tensors of {owner}, such as {first}')
        if block_depths(found.tensors) != depths:
            found_depths = describe_depths(block_depths(found.tensors))
            raise CheckpointError(f'it holds {found_depths}, but the backbone is {describe_depths(depths)}')
    checked = check_fit(found.tensors, expected, source, owner, found.name_in_file)
    backbone.load_state_dict(checked, strict=True)
    print_log(f'loaded all {len(checked)} tensors of the backbone from {checkpoint} ({found.layout})', logger='current')
    return found.layout
