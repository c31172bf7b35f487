"""Setting up mmengine's Runner from a config and running a job on it, with the set-up's errors as one line.

Everything that happens before the first training epoch (or test batch) is set-up: building the
model, datasets, optimizer and schedules from the config and loading weights. An error there
is most likely the config's (or the command line's), and becomes a ``ToolError`` raised from it
that names the config key it comes from, e.g. ``model.backbone: arch must be one of ...``; the
code of a module the config names may be at fault too, so the tools name ``MMDENSENET_TRACEBACK=1``,
which shows the error's traceback. Errors once the run has started keep their traceback.

The config key is found in the local variables of mmengine's builders, the frames the error
passed through: mmengine's internals, so a frame not recognised leaves the plain message.
"""

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, Callable, Optional, TypeVar

from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.hooks import Hook
from mmengine.registry.build_functions import build_from_cfg
from mmengine.runner import Runner

from ..errors import ToolError, one_line
from ..outputs import check_output, writable_folder
from ..weights.checkpoint_io import Checkpoint, check_resumable
from .config import config_paths
from .distributed import prepare_distributed
from .labels import check_labels, malformed_line
from .model import check_channels, check_layer_configs, unwrapped

T = TypeVar('T')


class _SetUp(Hook):
    """Tells the set-up from the run: it is over when the first epoch (or test batch) begins, once the
    built datasets' labels are checked against the model's classes."""

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self.over = False

    def before_train(self, runner: Runner) -> None:
        self.over = True
        loops = {'train_dataloader': runner.train_loop, 'val_dataloader': runner.val_loop}
        check_labels(unwrapped(runner.model), {key: getattr(loop, 'dataloader', None) for key, loop in loops.items()})

    def before_test(self, runner: Runner) -> None:
        self.over = True
        check_labels(unwrapped(runner.model), {'test_dataloader': runner.test_loop.dataloader})


def _code(function: Callable) -> Optional[CodeType]:
    """The code object of an mmengine function, which its frames run; None where it has none (another version)."""
    return getattr(function, '__code__', None)


# The builders that take a piece of the config, and the name of their argument that holds it.
BUILDERS = {_code(build_from_cfg): 'cfg', _code(Runner.build_dataloader): 'dataloader'}
SERIALIZE_DATA = _code(BaseDataset._serialize_data)


def _frames(error: BaseException) -> Iterator[FrameType]:
    """The frames that ``error`` passed through, outermost first."""
    trace = error.__traceback__
    while trace is not None:
        yield trace.tb_frame
        trace = trace.tb_next


def _built_configs(error: BaseException) -> Iterator[dict]:
    """The configs that builders were making when ``error`` was raised, innermost first."""
    configs = [frame.f_locals.get(BUILDERS[frame.f_code]) for frame in _frames(error) if frame.f_code in BUILDERS]
    return (config for config in reversed(configs) if isinstance(config, dict))


def _dataset_error(error: BaseException) -> Optional[str]:
    """The message for a dataset whose samples could not be read, where the frames show which.

    An empty dataset fails in mmengine's serializing (numpy joins none); a line of an annotation file
    that is not 'path label' fails in mmpretrain's ``CustomDataset``.
    """
    from mmpretrain.datasets import CustomDataset  # imported by then where it matters: a run that built one

    load_annotations = _code(CustomDataset.load_data_list)
    for frame in _frames(error):
        dataset = frame.f_locals.get('self')
        if frame.f_code is SERIALIZE_DATA and getattr(dataset, 'data_list', None) == []:
            source = dataset.ann_file or dataset.data_prefix.get('img_path') or dataset.data_root
            return f'{source} holds no samples; give a dataset with at least one'
        if frame.f_code is load_annotations and dataset.ann_file and dataset.with_label:
            return malformed_line(dataset.ann_file)
    return None


def _is_source(value: Any, built: dict) -> bool:
    """Whether the config ``value`` is where ``built`` came from.

    The Runner builds from copies, and builders may add arguments to them (an optimizer's
    ``params``, a model's ``data_preprocessor``), so ``value``'s items need only be among ``built``'s.
    """
    return isinstance(value, dict) and bool(value) and all(k in built and built[k] == v for k, v in value.items())


def config_key(error: BaseException, cfg: Config, order: Sequence[str]) -> Optional[str]:
    """The key of ``cfg`` whose build raised ``error``, searching the top-level keys in ``order`` first."""
    keys = [*order, *(key for key in cfg if key not in order)]
    for built in _built_configs(error):
        for key in keys:
            for path, value in config_paths(cfg.get(key), key):
                if _is_source(value, built):
                    return path
    return None


def _message(error: BaseException) -> str:
    """The error's message, with its type where the message alone would not say what went wrong."""
    if isinstance(error, (ValueError, TypeError, AssertionError)) and str(error):
        return one_line(error)
    return f'{type(error).__name__}: {one_line(error)}'


def set_up_error(error: BaseException, cfg: Config, order: Sequence[str]) -> ToolError:
    """The one-line error for ``error`` of the set-up, led by the config key it came from (:func:`config_key`).

    The key and a dataset's fault are read from mmengine's and mmpretrain's frames; where those are
    not what this module knows (other versions), the line is the plain message. The ``ToolError`` is
    raised from ``error`` (so the tools name the traceback switch) unless the fault was found in the
    data, which is the user's and not code's.
    """
    try:
        detail, key = _dataset_error(error), config_key(error, cfg, order)
    except Exception:  # frames of another shape: their locals are not the builders' arguments known here
        detail, key = None, None
    line = ToolError(f'{key or "cannot set up the run"}: {detail or _message(error)}')
    line.__cause__ = None if detail else error
    return line


def run_job(
    cfg: Config,
    launcher: str,
    job: Callable[[Runner], T],
    order: Sequence[str],
    what: str,
    local_rank: Optional[int] = None,
) -> T:
    """Builds the config's Runner and returns ``job(runner)``; errors of the set-up become one-line ``ToolError``s.

    Before the Runner loads a checkpoint (``load_from``, or the one it resumes from), the file is
    read weights-only (a URL fetched first) and must fit the model exactly.

    Args:
        cfg: The config, with ``work_dir``, ``load_from`` and ``resume`` set.
        launcher: 'none', 'pytorch', 'slurm' or 'mpi'.
        job: What to do with the built runner, e.g. ``Runner.train``.
        order: The config keys that the job builds, in the order it builds them; an error is
            attributed to the first key whose config it was building.
        what: What ``load_from`` is in this job, named in its errors, e.g. 'checkpoint'.
        local_rank: The local rank a launcher passed as ``--local-rank``; it becomes ``LOCAL_RANK``
            (where mmengine reads it) unless that is set.
    """
    check_layer_configs(cfg)
    writable_folder(cfg.work_dir, 'work_dir')
    # The Runner saves the config it runs into the work dir, under the config's own name.
    check_output(Path(cfg.work_dir) / Path(cfg.filename).name, cfg.filename)
    checkpoint = None
    if cfg.get('load_from') is not None:  # with --resume, the checkpoint to resume from
        checkpoint = Checkpoint.read(cfg.load_from, what)
        if cfg.get('resume'):
            check_resumable(checkpoint.content, checkpoint.path)
        cfg.load_from = checkpoint.path  # the Runner loads the file read here, never a URL itself
    if local_rank is not None:
        os.environ.setdefault('LOCAL_RANK', str(local_rank))
    cfg.launcher = launcher
    set_up = _SetUp()
    try:
        prepare_distributed(cfg, launcher)
        runner = Runner.from_cfg(cfg)
        runner.register_hook(set_up)
        model = unwrapped(runner.model)
        check_channels(model)
        if checkpoint is not None:
            checkpoint.tensors_for(model)
        del checkpoint  # its tensors are not needed during the run; the Runner loads the file itself
        return job(runner)
    except ToolError:
        raise
    except Exception as error:
        if set_up.over:
            raise
        line = set_up_error(error, cfg, order)
        raise line from line.__cause__  # chained to the error only where code may be at fault
