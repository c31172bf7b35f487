"""Registries of mmdensenet.

Each is a direct child of mmengine's root registry, so ``type='mmdensenet.DenseNet'``
resolves from any OpenMMLab codebase (mmpretrain, mmdet, mmseg) once ``mmdensenet``
is imported, e.g. through ``custom_imports``.
"""

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmdensenet', locations=['mmdensenet.models'])
