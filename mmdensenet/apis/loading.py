"""The checkpoints a run loads: fetched, read weights-only and checked against the model first.

mmengine's Runner loads ``load_from`` (and the checkpoint it resumes from) with
``strict=False``: a checkpoint of another model loads nothing and only logs it, and a URL is
unpickled by ``torch.hub`` without the weights-only guard. The tools therefore fetch a URL
themselves, read every checkpoint with :func:`~mmdensenet.weights.read_checkpoint` and refuse
one that does not fit the model, or whose values cannot be its, before the Runner touches it.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse
from urllib.request import url2pathname

import torch.nn as nn
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner.checkpoint import find_latest_checkpoint

from ..engine.checkpoints import holds_training_state
from ..errors import ToolError
from ..inputs import require_file
from ..weights import read_checkpoint, unwrap_state_dict
from ..weights.checkpoint_io import DATA_PARALLEL_PREFIX, StateDict, check_values, errors_about
from ..weights.download import cached_download, is_url


def checkpoint_source(path: str, what: str = 'checkpoint') -> str:
    """An http(s) URL as it is, or the local file that a path or a ``file://`` URL names, which must be a file.

    ``what`` names the checkpoint in errors, e.g. 'load_from'.
    """
    if is_url(path):
        return path
    url = urlparse(path)
    if url.scheme == 'file' and url.netloc in ('', 'localhost'):
        path = url2pathname(url.path)
    elif '://' in path and not Path(path).exists():
        raise ToolError(f'{what} {path}: checkpoints are read from a local file or an http(s) URL; give one of those')
    return os.fspath(require_file(path, what))


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file read weights-only, with the state dict that the Runner will load from it."""

    path: str
    content: Any
    state_dict: StateDict

    @classmethod
    def read(cls, path: str, what: str = 'checkpoint') -> 'Checkpoint':
        """Reads a local file or a URL (fetched first); ``what`` names it in errors, e.g. 'load_from'."""
        path = checkpoint_source(path, what)
        if is_url(path):
            path = os.fspath(cached_download(path))
        with errors_about(what):
            content, _ = read_checkpoint(path)
            # mmengine loads the 'state_dict' entry if there is one, else the whole file.
            weights = content['state_dict'] if isinstance(content, Mapping) and 'state_dict' in content else content
            state_dict = unwrap_state_dict({'state_dict': weights}, path)
        # mmengine's Runner strips the wrapper's prefix from the keys before loading them.
        return cls(path, content, {key.removeprefix(DATA_PARALLEL_PREFIX): value for key, value in state_dict.items()})

    def check_resumable(self) -> None:
        """Refuses a file without the epoch and iteration that resuming restores."""
        if not holds_training_state(self.content):
            raise ToolError(
                f'cannot resume from {self.path}: it holds no training state (meta.epoch, meta.iter); '
                'to start from its weights, use --cfg-options load_from=PATH'
            )


def unwrapped(model: nn.Module) -> nn.Module:
    """The model that mmengine loads a checkpoint into: inside DDP and test-time-augmentation wrappers."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def check_fits(model: nn.Module, state_dict: StateDict, path: str) -> None:
    """Raises a ``ToolError`` unless ``state_dict`` has exactly ``model``'s keys and shapes, and values
    that can be its (finite, of the same kind: see :func:`~mmdensenet.weights.checkpoint_io.check_values`)."""
    expected = model.state_dict()
    problems = []
    for kind, keys in (
        ('missing', sorted(expected.keys() - state_dict.keys())),
        ('unexpected', sorted(state_dict.keys() - expected.keys())),
    ):
        if keys:
            problems.append(f'{len(keys)} {kind} keys (e.g. {keys[0]})')
    resized = [key for key in expected.keys() & state_dict.keys() if expected[key].shape != state_dict[key].shape]
    if resized:
        key = sorted(resized)[0]
        shapes = f'{tuple(state_dict[key].shape)} in the file, {tuple(expected[key].shape)} in the model'
        problems.append(f'{len(resized)} tensors of another shape (e.g. {key}: {shapes})')
    if problems:
        raise ToolError(f'checkpoint {path} does not fit the model: {", ".join(problems)}')
    with errors_about(f'checkpoint {path}'):
        check_values(state_dict, expected)


def load_weights(model: nn.Module, path: str) -> Checkpoint:
    """Loads a checkpoint file or URL, read weights-only, into ``model``, which it must fit exactly."""
    checkpoint = Checkpoint.read(path)
    check_fits(model, checkpoint.state_dict, checkpoint.path)
    model.load_state_dict(checkpoint.state_dict)
    return checkpoint


def checkpoint_to_load(load_from: Optional[str], resume: bool, work_dir: str) -> Optional[str]:
    """The checkpoint that mmengine's Runner will load: ``load_from``, else with ``resume`` the work dir's latest."""
    if load_from is None and resume:
        return find_latest_checkpoint(work_dir)
    return load_from
