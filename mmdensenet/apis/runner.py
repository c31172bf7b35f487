"""Building mmengine's Runner from a config, with the config's mistakes reported as one line.

Everything that happens before the first training epoch (or test batch) is set-up: building the
model, datasets, optimizer and schedules from the config and loading weights. An error there
is the config's (or the command line's), and becomes a ``ToolError`` that names the config key
it comes from, e.g. ``model.backbone: arch must be one of ...``. Errors once the run has
started keep their traceback.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Optional, TypeVar

from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.hooks import Hook
from mmengine.registry.build_functions import build_from_cfg
from mmengine.runner import Runner

from ..errors import ToolError, one_line
from ..outputs import check_output, writable_folder
from .config import config_paths
from .distributed import prepare_distributed
from .labels import check_labels
from .loading import Checkpoint, check_fits, checkpoint_to_load, unwrapped
from .model import check_channels, check_layer_configs

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


# The builders that take a piece of the config, and the name of their argument that holds it.
BUILDERS = {build_from_cfg.__code__: 'cfg', Runner.build_dataloader.__code__: 'dataloader'}


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


def _empty_dataset(error: BaseException) -> Optional[str]:
    """The message for a dataset that found no samples, where mmengine's serializing fails (numpy joins none)."""
    for frame in _frames(error):
        dataset = frame.f_locals.get('self')
        if frame.f_code is BaseDataset._serialize_data.__code__ and getattr(dataset, 'data_list', None) == []:
            source = dataset.ann_file or dataset.data_prefix.get('img_path') or dataset.data_root
            return f'{source} holds no samples; give a dataset with at least one'
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
    empty = _empty_dataset(error)
    if empty is not None:
        return empty
    if isinstance(error, (ValueError, TypeError, AssertionError)) and str(error):
        return one_line(error)
    return f'{type(error).__name__}: {one_line(error)}'


def run(cfg: Config, launcher: str, job: Callable[[Runner], T], order: Sequence[str], what: str) -> T:
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
    """
    check_layer_configs(cfg)
    writable_folder(cfg.work_dir, 'work_dir')
    # The Runner saves the config it runs into the work dir, under the config's own name.
    check_output(Path(cfg.work_dir) / Path(cfg.filename).name, cfg.filename)
    source = checkpoint_to_load(cfg.get('load_from'), cfg.get('resume', False), cfg.work_dir)
    checkpoint = None
    if source is not None:
        checkpoint = Checkpoint.read(source, what)
        if cfg.get('resume'):
            checkpoint.check_resumable()
        cfg.load_from = checkpoint.path  # the Runner loads the file read here, never a URL itself
    cfg.launcher = launcher
    set_up = _SetUp()
    try:
        prepare_distributed(cfg, launcher)
        runner = Runner.from_cfg(cfg)
        runner.register_hook(set_up)
        model = unwrapped(runner.model)
        check_channels(model)
        if checkpoint is not None:
            check_fits(model, checkpoint.state_dict, checkpoint.path)
        del checkpoint  # its tensors are not needed during the run; the Runner loads the file itself
        return job(runner)
    except ToolError:
        raise
    except Exception as error:
        if set_up.over:
            raise
        key = config_key(error, cfg, order)
        raise ToolError(f'{key or "cannot set up the run"}: {_message(error)}') from error
