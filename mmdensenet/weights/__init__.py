"""Weights in and out: checkpoint files (checkpoint_io, their one home), torchvision conversion, pretrained backbones.

Importing it allowlists the harmless classes of mmengine's own checkpoints for torch's
weights-only loading (see :mod:`.safe_globals`).
"""

from .checkpoint_io import CheckpointError, read_checkpoint, save_atomically, unwrap_state_dict
from .convert import Conversion, from_torchvision, to_torchvision
from .pretrained import load_pretrained
from .safe_globals import allow_mmengine_checkpoints

allow_mmengine_checkpoints()

__all__ = [
    'CheckpointError',
    'Conversion',
    'allow_mmengine_checkpoints',
    'from_torchvision',
    'load_pretrained',
    'read_checkpoint',
    'save_atomically',
    'to_torchvision',
    'unwrap_state_dict',
]
