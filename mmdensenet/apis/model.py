"""A config's model: built in the config's scope, checked, and given a checkpoint's weights, ready to run."""

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import MODELS, DefaultScope

from ..errors import ToolError, reraise_as_tool_error
from ..models.backbones.densenet import FROM_MMPRETRAIN, DenseNet
from ..weights.checkpoint_io import load_weights
from .config import config_paths, is_registered, load_config

DEFAULT_SCOPE = 'mmpretrain'
# The model settings that mmcv's layer builders read, with examples of the types they take.
LAYER_CONFIGS = {'norm_cfg': ('BN', 'SyncBN', 'GN', 'LN'), 'act_cfg': ('ReLU', 'GELU', 'SiLU')}


def check_layer_configs(cfg: Config) -> None:
    """Refuses a ``norm_cfg`` or ``act_cfg`` of the config's model that is not a dict naming a registered layer.

    mmcv's builders would only say ``cfg must be a dict``, or name ``None`` instead of an unknown type.
    """
    scope = cfg.get('default_scope', DEFAULT_SCOPE)
    for path, value in config_paths(cfg.get('model'), 'model'):
        examples = LAYER_CONFIGS.get(path.rpartition('.')[2])
        if examples is None or value is None:
            continue
        layer = value.get('type') if isinstance(value, dict) else None
        if not isinstance(layer, (str, type)):
            raise ToolError(
                f'{path} must be a dict with the type of a layer, e.g. dict(type={examples[0]!r}), got {value!r}'
            )
        if isinstance(layer, str) and not is_registered(MODELS, layer, scope):
            raise ToolError(f'{path}.type: no layer is registered as {layer!r}; e.g. {", ".join(map(repr, examples))}')


def build_model(cfg: Config) -> nn.Module:
    """Build the config's model, with its top-level ``data_preprocessor`` as the Runner adds it."""
    if not isinstance(cfg.get('model'), dict):
        raise ToolError(f'config {cfg.filename} defines no model')
    check_layer_configs(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    if isinstance(cfg.get('data_preprocessor'), dict):
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    scope = cfg.get('default_scope', DEFAULT_SCOPE)
    with reraise_as_tool_error("cannot build the config's model"), DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(model_cfg)


def unwrapped(model: nn.Module) -> nn.Module:
    """The model that mmengine loads a checkpoint into: inside DDP and test-time-augmentation wrappers."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def check_channels(model: nn.Module) -> None:
    """Refuses a head or neck that takes other channels than the backbone gives.

    The head is checked where the backbone says what it gives (``out_channels``, as ours does) and
    the neck, if any, is global average pooling, which keeps the channels. A neck with a list of
    ``in_channels`` (mmdet's and mmseg's FPN) after our DenseNet must take its ``out_channels``: a
    config written for mmpretrain's DenseNet, whose taps are other tensors, does not.
    """
    from mmpretrain.models.necks import GlobalAveragePooling

    backbone, neck, head = (getattr(model, name, None) for name in ('backbone', 'neck', 'head'))
    channels = getattr(backbone, 'out_channels', None)
    neck_width = getattr(neck, 'in_channels', None)
    if isinstance(backbone, DenseNet) and isinstance(neck_width, (list, tuple)) and list(neck_width) != list(channels):
        raise ToolError(
            f'model.neck: in_channels are {list(neck_width)}, but the backbone gives {list(channels)} '
            "(its out_channels): mmdensenet's DenseNet taps each dense block before its transition, "
            f"mmpretrain's after it; {FROM_MMPRETRAIN}"
        )
    width = getattr(head, 'in_channels', None)
    if not channels or not isinstance(width, int) or not (neck is None or isinstance(neck, GlobalAveragePooling)):
        return
    if width != channels[-1]:
        raise ToolError(
            f'model.head: in_channels is {width}, but the backbone gives {channels[-1]} '
            f'(its out_channels are {list(channels)})'
        )


def net_stride(model: nn.Module) -> int:
    """The largest ``reduction`` in the backbone's ``feature_info`` (timm's format); 1 without one."""
    feature_info = getattr(getattr(model, 'backbone', model), 'feature_info', None) or []
    return max((info['reduction'] for info in feature_info), default=1)


def init_model(
    config: Union[str, Path, Config], checkpoint: Union[str, Path, None] = None, device: str = 'cpu'
) -> nn.Module:
    """The config's model in eval mode on ``device``, as mmpretrain's ``init_model`` gives it, but strict.

    Args:
        config: A config file, or a config read with :func:`~mmdensenet.apis.load_config`.
        checkpoint: Checkpoint file or URL, read with ``weights_only=True``; it must fit the model
            exactly. Without one, the weights are random (PyTorch's defaults).
        device: Where the model runs.

    Returns:
        The model, with the checkpoint's ``meta.dataset_meta`` (what mmengine's Runner saves, e.g.
        the class names) as ``model.dataset_meta``: empty without a checkpoint or without one saved.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    model = build_model(cfg)
    check_channels(model)
    model.dataset_meta = {} if checkpoint is None else _dataset_meta(load_weights(model, str(checkpoint)).content)
    with reraise_as_tool_error(f'cannot use device {device!r}'):
        return model.to(device).eval()


def _dataset_meta(content: Any) -> dict:
    meta = content.get('meta') if isinstance(content, Mapping) else None
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, Mapping) else None
    return dict(dataset_meta) if isinstance(dataset_meta, Mapping) else {}
