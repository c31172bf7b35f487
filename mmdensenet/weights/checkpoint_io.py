"""Reading untrusted checkpoint files and writing checkpoints atomically."""

import hashlib
import io
import pickle
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ToolError
from ..outputs import atomic_output

StateDict = dict[str, Tensor]
# Keys under which training frameworks wrap a model's weights.
WRAPPER_KEYS = ('state_dict', 'model')
# What (Distributed)DataParallel puts before the names of the weights of the model it wraps.
DATA_PARALLEL_PREFIX = 'module.'


class CheckpointError(ToolError):
    """A checkpoint file that cannot be read or does not hold what is needed."""


# Where torch's weights-only refusal states its reason, and lines of it that only give advice.
UNPICKLER_REASON = 'WeightsUnpickler error:'
TORCH_BOILERPLATE = ('Weights only load failed', 'Please file an issue', 'Check the documentation')
# Words of a reason that says the file refers to code or objects, not that it is corrupt.
CODE_REFERENCES = ('GLOBAL', 'allowlisted', 'reduce', 'not allowed')


def _reason(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines()]
    for line in lines:
        if line.startswith(UNPICKLER_REASON):
            return line.removeprefix(UNPICKLER_REASON).split('. ')[0].strip()
    reasons = [line for line in lines if line and not line.startswith(TORCH_BOILERPLATE)]
    return reasons[0] if reasons else type(error).__name__


@contextmanager
def errors_about(source: str) -> Iterator[None]:
    """Prefixes the message of a CheckpointError raised in the block with ``source``."""
    try:
        yield
    except CheckpointError as error:
        raise CheckpointError(f'{source}: {error}') from None


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
    except Exception as error:  # torch raises many types for corrupt files
        reason = _reason(error)
        if isinstance(error, pickle.UnpicklingError) and any(word in reason for word in CODE_REFERENCES):
            raise CheckpointError(f'refusing {path}: it refers to code, not only to tensors ({reason})') from None
        raise CheckpointError(f'{path} is not a PyTorch checkpoint ({reason})') from None
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


INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _kind(dtype: torch.dtype) -> str:
    """The values a dtype holds, at any precision: a tensor loads into another of the same kind."""
    if dtype.is_floating_point:
        return 'floating-point'
    if dtype.is_complex:
        return 'complex'
    return 'integer' if dtype in INTEGER_DTYPES else str(dtype).removeprefix('torch.')  # bool, quantized: alike only


def check_values(
    tensors: Mapping[str, Tensor], expected: Mapping[str, Tensor], display_key: Callable[[str], str] = str
) -> None:
    """Refuses a tensor that cannot hold the values of the tensor of ``expected`` with its name.

    It must be dense, hold numbers of the same kind (floating-point at any precision, so fp16 and
    bf16 files load; integer buffers such as ``num_batches_tracked``), and finite numbers: NaN or
    infinity in weights is damage, which would otherwise only show as a model that predicts nothing.
    ``display_key`` names tensors in error messages.
    """
    for key, target in expected.items():
        tensor = tensors.get(key)
        if tensor is None:
            continue
        name = display_key(key)
        if tensor.layout != torch.strided or tensor.device.type == 'meta':
            raise CheckpointError(f'{name} holds no dense values (a {tensor.layout} tensor on {tensor.device})')
        if _kind(tensor.dtype) != _kind(target.dtype):
            found, needed = (str(t.dtype).removeprefix('torch.') for t in (tensor, target))
            raise CheckpointError(f'{name} holds {found} values, where the model has {needed}')
        if tensor.is_floating_point() or tensor.is_complex():
            values = tensor.float() if tensor.dtype.itemsize == 1 else tensor  # some 8-bit floats lack isfinite
            if not torch.isfinite(values).all():
                raise CheckpointError(f'{name} holds NaN or infinite values')


def save_atomically(obj: Any, path: str) -> str:
    """Saves ``obj`` to a temporary file beside ``path``, then renames it into place.

    Returns:
        The sha256 of the written file.
    """
    with atomic_output(Path(path)) as temporary:
        torch.save(obj, temporary)
        return hashlib.sha256(temporary.read_bytes()).hexdigest()
