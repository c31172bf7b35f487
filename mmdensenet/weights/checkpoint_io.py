"""Reading untrusted checkpoint files and writing checkpoints atomically."""

import hashlib
import io
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

StateDict = dict[str, Tensor]
# Keys under which training frameworks wrap a model's weights.
WRAPPER_KEYS = ('state_dict', 'model')


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not hold what is needed."""


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # torch's weights-only refusals bury the reason under a generic preamble.
    reasons = [line for line in lines if 'GLOBAL' in line or 'allowlisted' in line or 'not allowed' in line]
    return (reasons or lines or [type(error).__name__])[0]


def read_checkpoint(path: str) -> tuple[Any, str]:
    """Loads a checkpoint with ``weights_only=True``, so a file that carries code cannot run it.

    Returns:
        The loaded object and the sha256 of the file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CheckpointError(f'cannot read {path}: {error.strerror}') from None
    if not data:
        raise CheckpointError(f'{path} is empty')
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f'refusing {path}: it holds more than weights ({_first_line(error)})') from None
    except Exception as error:  # torch raises many types for corrupt files
        raise CheckpointError(f'{path} is not a PyTorch checkpoint ({_first_line(error)})') from None
    return checkpoint, hashlib.sha256(data).hexdigest()


def unwrap_state_dict(checkpoint: Any, path: str) -> StateDict:
    """The tensors of a checkpoint, found at its top level or under 'state_dict' or 'model'."""
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise CheckpointError(f'{path} holds no state dict (a mapping of names to tensors)')
    for key, value in checkpoint.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(f'{path} is not a state dict: {key!r} is not a named tensor')
    return dict(checkpoint)


def save_atomically(obj: Any, path: str) -> str:
    """Saves ``obj`` to a temporary file beside ``path``, then renames it into place.

    Returns:
        The sha256 of the written file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'wb') as file:
            torch.save(obj, file)
        digest = hashlib.sha256(Path(temporary).read_bytes()).hexdigest()
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest
