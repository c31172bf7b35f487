"""Checkpoint files, the one home for them: where they come from, reading them, checking them, writing them.

Checkpoints are untrusted input: every one is read weights-only, so a file that carries code cannot
run it, and every tensor is checked (names, shapes, values) before a model takes it. mmengine's
Runner loads ``load_from`` (and the checkpoint it resumes from) with ``strict=False`` (a
checkpoint of another model loads nothing and only logs it) and unpickles a URL through
``torch.hub`` without the weights-only guard. So the tools fetch a URL themselves, into the cache
where mmengine keeps downloads, and refuse a file that does not fit before the Runner touches it.
"""

import hashlib
import io
import os
import pickle
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from torch import Tensor, nn

from ..errors import ToolError
from ..inputs import file_kind, require_file
from ..outputs import atomic_output

StateDict = dict[str, Tensor]
# Keys under which training frameworks wrap a model's weights.
WRAPPER_KEYS = ('state_dict', 'model')
# What (Distributed)DataParallel puts before the names of the weights of the model it wraps.
DATA_PARALLEL_PREFIX = 'module.'
# What a classifier or detector puts before the names of its backbone's weights.
BACKBONE_PREFIX = 'backbone.'
# A BatchNorm buffer that files saved before BatchNorm had it lack; it loads as 0, as BatchNorm assumes.
BATCHES_TRACKED = 'num_batches_tracked'
KEYS_SHOWN = 3  # tensor names that an error lists


class CheckpointError(ToolError):
    """A checkpoint file that cannot be read, written or used: the file is the user's, or where they put it."""


# Where torch's weights-only refusal states its reason, and lines of it that only give advice.
UNPICKLER_REASON = 'WeightsUnpickler error:'
TORCH_BOILERPLATE = ('Weights only load failed', 'Please file an issue', 'Check the documentation')
# Words of a reason that says the file refers to code or objects, not that it is corrupt.
CODE_REFERENCES = ('GLOBAL', 'allowlisted', 'reduce', 'not allowed')


def is_url(path: str) -> bool:
    """Whether ``path`` is an http(s) URL."""
    return urlparse(path).scheme in ('http', 'https')


def cache_path(url: str) -> Path:
    """Where mmengine's http loader caches ``url``: torch hub's ``checkpoints`` folder, under the URL's file name."""
    return Path(torch.hub.get_dir()) / 'checkpoints' / Path(urlparse(url).path).name


def _download(url: str, path: Path) -> None:
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print_log(f'downloading {url} to {path}', logger='current')
    try:  # torch writes a temporary file, renamed into place when complete and removed otherwise
        torch.hub.download_url_to_file(url, str(path), progress=sys.stderr.isatty())
    except (OSError, ValueError, HTTPException) as error:  # URLError and HTTPError are OSErrors
        reason = getattr(error, 'reason', None) or error
        raise CheckpointError(
            f'cannot download {url} ({reason}); offline, give the path of a local copy as the checkpoint, '
            f'or place the file at {path}'
        ) from None


def cached_download(url: str) -> Path:
    """The local copy of ``url`` in mmengine's download cache, downloaded first if it is not there.

    As in mmengine, rank 0 downloads while the other processes wait; a machine without rank 0
    downloads into its own cache after it.
    """
    path = cache_path(url)
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(url, path)
    if world_size > 1:
        torch.distributed.barrier()
        _download(url, path)
    return path


def checkpoint_source(path: str, what: str = 'checkpoint') -> str:
    """An http(s) URL as it is, or the local file that a path or a ``file://`` URL names, which must be a file.

    The one check that a checkpoint given to a run exists. ``what`` names it in errors, e.g. 'load_from'.
    """
    if is_url(path):
        return path
    url = urlparse(path)
    if url.scheme == 'file' and url.netloc in ('', 'localhost'):
        path = url2pathname(url.path)
    elif '://' in path and not Path(path).exists():
        raise CheckpointError(
            f'{what} {path}: checkpoints are read from a local file or an http(s) URL; give one of those'
        )
    return os.fspath(require_file(path, what))


def local_checkpoint(path: str, what: str = 'checkpoint') -> str:
    """The local file of a checkpoint given as a path or a URL (:func:`checkpoint_source`), fetched if remote."""
    path = checkpoint_source(path, what)
    return os.fspath(cached_download(path)) if is_url(path) else path


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
        kind = file_kind(Path(path))
        if kind != 'a file':  # reading a named pipe would block
            raise CheckpointError(f'cannot read {path}: it is {kind}, not a file')
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
        if not _finite(tensor):
            raise CheckpointError(f'{name} holds NaN or infinite values')


def _finite(tensor: Tensor) -> bool:
    """Whether every value of ``tensor`` is a finite number (always so for integers)."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return True
    values = tensor.float() if tensor.dtype.itemsize == 1 else tensor  # some 8-bit floats lack isfinite
    return bool(torch.isfinite(values).all())


def _nested_tensors(value: Any, name: str) -> Iterator[tuple[str, Tensor]]:
    """The tensors in ``value`` and its nested dicts and lists, each with its dotted name under ``name``."""
    if isinstance(value, Tensor):
        yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _nested_tensors(item, f'{name}.{key}')
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _nested_tensors(item, f'{name}.{index}')


def name_some(keys: Sequence[str], display_key: Callable[[str], str] = str) -> str:
    """The first ``KEYS_SHOWN`` of ``keys``, as ``display_key`` names them, for an error message."""
    return ', '.join(map(display_key, keys[:KEYS_SHOWN]))


def _tensors(count: int) -> str:
    return f'{count} tensor{"" if count == 1 else "s"}'


def check_fit(
    state_dict: StateDict,
    expected: Mapping[str, Tensor],
    source: str,
    owner: str,
    display_key: Callable[[str], str] = str,
) -> StateDict:
    """The one check that a checkpoint's tensors fit a model: ``expected``'s names and shapes exactly, and
    values that can be theirs (see :func:`check_values`); else a ``CheckpointError`` saying what differs.

    A missing ``num_batches_tracked`` becomes 0, what BatchNorm assumes of files saved before it had one.

    Args:
        state_dict: The checkpoint's tensors, under the model's names.
        expected: The model's tensors (shapes and dtypes; the meta device will do).
        source: The checkpoint in errors, e.g. 'checkpoint epoch_3.pth'.
        owner: The model in errors, e.g. 'the model', 'DenseNet-121'.
        display_key: Names a tensor in errors as the file names it.

    Returns:
        The tensors in the order of ``expected``.
    """
    missing = [key for key in expected if key not in state_dict and not key.endswith(BATCHES_TRACKED)]
    unexpected = [key for key in state_dict if key not in expected]
    resized = [key for key in expected if key in state_dict and state_dict[key].shape != expected[key].shape]
    problems = []
    if missing:
        problems.append(f'{_tensors(len(missing))} missing ({name_some(missing, display_key)})')
    if unexpected:
        problems.append(f'{_tensors(len(unexpected))} unexpected ({name_some(unexpected, display_key)})')
    if resized:
        key = resized[0]
        shapes = f'{tuple(state_dict[key].shape)} in the file, {tuple(expected[key].shape)} in {owner}'
        problems.append(f'{_tensors(len(resized))} of another shape (e.g. {display_key(key)}: {shapes})')
    if problems:
        raise CheckpointError(f'{source} does not fit {owner}: {", ".join(problems)}')
    checked = {key: state_dict.get(key, torch.tensor(0, dtype=torch.long)) for key in expected}
    with errors_about(source):
        check_values(checked, expected, display_key)
    return checked


def holds_training_state(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint has what resuming restores: the weights, and the epoch and iteration reached."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    return isinstance(meta, Mapping) and {'epoch', 'iter'} <= meta.keys() and 'state_dict' in checkpoint


def check_resumable(checkpoint: Any, path: str) -> None:
    """The one check that a run can resume from a loaded checkpoint; else a ``CheckpointError``.

    It must hold the training state, and its optimizer state only finite numbers: NaN there is
    damage that the first step would spread into every weight.
    """
    if not holds_training_state(checkpoint):
        raise CheckpointError(
            f'{path} is not a training checkpoint: it holds no training state (meta.epoch, meta.iter) to resume '
            'from; to start from its weights, use --cfg-options load_from=PATH'
        )
    for name, tensor in _nested_tensors(checkpoint.get('optimizer'), 'optimizer'):
        if not _finite(tensor):
            raise CheckpointError(
                f'{path}: {name} holds NaN or infinite values, so the run cannot resume from it; resume from '
                'another checkpoint, or start from its weights with --cfg-options load_from=PATH'
            )


def save_atomically(obj: Any, path: str) -> str:
    """Saves ``obj`` to a temporary file beside ``path``, then renames it into place.

    Returns:
        The sha256 of the written file.
    """
    with atomic_output(Path(path)) as temporary:
        torch.save(obj, temporary)
        return hashlib.sha256(temporary.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file read weights-only, with the state dict that mmengine's Runner will load from it."""

    path: str
    content: Any
    state_dict: StateDict

    @classmethod
    def read(cls, path: str, what: str = 'checkpoint') -> 'Checkpoint':
        """Reads a local file or a URL (fetched first); ``what`` names it in errors, e.g. 'load_from'."""
        path = local_checkpoint(path, what)
        with errors_about(what):
            content, _ = read_checkpoint(path)
            # mmengine loads the 'state_dict' entry if there is one, else the whole file.
            weights = content['state_dict'] if isinstance(content, Mapping) and 'state_dict' in content else content
            state_dict = unwrap_state_dict({'state_dict': weights}, path)
        # mmengine's Runner strips the wrapper's prefix from the keys before loading them.
        return cls(path, content, {key.removeprefix(DATA_PARALLEL_PREFIX): value for key, value in state_dict.items()})

    def tensors_for(self, model: nn.Module) -> StateDict:
        """The file's tensors, checked to fit ``model`` exactly (:func:`check_fit`)."""
        return check_fit(self.state_dict, model.state_dict(), f'checkpoint {self.path}', 'the model')


def load_weights(model: nn.Module, path: str) -> Checkpoint:
    """Loads a checkpoint file or URL, read weights-only, into ``model``, which it must fit exactly."""
    checkpoint = Checkpoint.read(path)
    model.load_state_dict(checkpoint.tensors_for(model))
    return checkpoint
