"""Registries of mmdensenet.

Each is a direct child of mmengine's root registry, so ``type='mmdensenet.DenseNet'``,
``type='mmdensenet.LoadImageFromFile'``, ``type='mmdensenet.ToGrayscale'``,
``type='mmdensenet.FaultToleranceHook'`` and ``type='mmdensenet.AUROC'`` resolve from any
OpenMMLab codebase (mmpretrain, mmdet, mmseg) once ``mmdensenet`` is imported, e.g. through
``custom_imports``.
"""

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmdensenet', locations=['mmdensenet.models'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='mmdensenet', locations=['mmdensenet.datasets'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmdensenet', locations=['mmdensenet.engine.hooks'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='mmdensenet', locations=['mmdensenet.evaluation'])
