"""Moved to :mod:`mmdensenet.apis.config` and :mod:`mmdensenet.apis.model`; this alias keeps the old imports working."""

from ..apis.config import load_config
from ..apis.model import DEFAULT_SCOPE, build_model

__all__ = ['DEFAULT_SCOPE', 'build_model', 'load_config']
