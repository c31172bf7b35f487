"""Reading a config as the tools do: one-line errors, ``--cfg-options`` checked, a work dir set."""

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Union

from mmengine.config import Config
from mmengine.registry import Registry
from mmengine.runner import Runner

from ..errors import ToolError, reraise_as_tool_error
from ..inputs import require_file

# Top-level settings that mmengine's Runner (its arguments, and what from_cfg reads besides) or
# these tools read, so that --cfg-options may add them to a config that lacks them.
RUNNER_SETTINGS = {
    *(name for name in inspect.signature(Runner.__init__).parameters if name != 'self'),
    *('compile', 'activation_checkpointing', 'efficient_conv_bn_eval', 'model_wrapper_cfg'),
    *('find_unused_parameters', 'sync_bn', 'runner_type', 'custom_imports', 'tta_model', 'tta_pipeline'),
}

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def config_paths(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``value`` and everything inside it, each with its key path, e.g. ``('model.backbone.arch', 121)``."""
    yield path, value
    if isinstance(value, dict):
        children = ((f'{path}.{key}', child) for key, child in value.items())
    elif isinstance(value, (list, tuple)):
        children = ((f'{path}[{index}]', child) for index, child in enumerate(value))
    else:
        return
    for child_path, child in children:
        yield from config_paths(child, child_path)


def is_registered(registry: Registry, name: str, scope: Optional[str]) -> bool:
    """Whether mmengine's builders find the type ``name`` in ``registry`` for a config of ``scope``."""
    with registry.switch_scope_and_registry(scope) as scoped:
        return scoped.get(name) is not None


def _check_new_keys(cfg: Config, cfg_options: dict) -> None:
    """Refuses a ``--cfg-options`` key that starts a new top-level setting nothing reads (a typo, say)."""
    unknown = sorted({key.split('.')[0] for key in cfg_options} - set(cfg.keys()) - RUNNER_SETTINGS)
    if unknown:
        raise ToolError(
            f'--cfg-options: {", ".join(unknown)} is not a key of {cfg.filename} nor a setting that '
            "mmengine's Runner reads; a new top-level key goes into a config file"
        )


def load_config(config: Union[str, Path], cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Config:
    """Reads a config (running its ``custom_imports``), applies ``--cfg-options`` and sets the work dir.

    The work dir defaults to ``work_dirs/<config name>`` when neither ``work_dir`` nor the
    config gives one.
    """
    require_file(config, 'config file')
    with reraise_as_tool_error(f'cannot read config {config}'):
        cfg = Config.fromfile(config)
    if cfg_options:
        _check_new_keys(cfg, cfg_options)
        with reraise_as_tool_error('--cfg-options'):
            cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(config).stem)
    return cfg


def setting(cfg: Config, key: str) -> Any:
    """The value of the dotted ``key`` in ``cfg``, or None where it is not set."""
    top, *parts = key.split('.')
    value = cfg.get(top)
    for part in parts:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_whole_numbers(cfg: Config, settings: dict[str, int]) -> None:
    """Refuses a setting that is not a whole number of at least the least value ``settings`` give it."""
    for key, least in settings.items():
        value = setting(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ToolError(f'{key} must be a whole number of at least {least}, got {value!r}')


def require_keys(cfg: Config, keys: tuple[str, ...], job: str) -> None:
    """Refuses a config that sets none of ``keys``, which ``job`` (e.g. 'train') needs."""
    missing = [key for key in keys if cfg.get(key) is None]
    if missing:
        raise ToolError(f'{cfg.filename} cannot {job}: it sets no {", ".join(missing)}')


def set_dataloaders(cfg: Config, **settings: bool) -> None:
    """Sets ``settings`` (e.g. ``pin_memory=False``) on each dataloader the config has."""
    for loader in DATALOADERS:
        if cfg.get(loader) is not None:
            cfg[loader].update(settings)
