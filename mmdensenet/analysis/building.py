"""Configs and models for the tools: read a config, build its model in the config's scope."""

import copy
from pathlib import Path
from typing import Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from ..apis import load_config as read_config
from ..errors import ToolError, reraise_as_tool_error

DEFAULT_SCOPE = 'mmpretrain'


def load_config(path: Union[str, Path]) -> Config:
    """Read an mmengine config (running its ``custom_imports``) that defines a model."""
    cfg = read_config(path)
    if not isinstance(cfg.get('model'), dict):
        raise ToolError(f'config {path} defines no model')
    return cfg


def build_model(cfg: Config) -> nn.Module:
    """Build the config's model, with its top-level ``data_preprocessor`` as the Runner adds it."""
    model_cfg = copy.deepcopy(cfg.model)
    if isinstance(cfg.get('data_preprocessor'), dict):
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    scope = cfg.get('default_scope', DEFAULT_SCOPE)
    with reraise_as_tool_error("cannot build the config's model"), DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(model_cfg)
