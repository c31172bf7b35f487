"""Writing training checkpoints so that a kill cannot tear them, and choosing one to resume from."""

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, Union

from mmengine.logging import print_log

from ..outputs import atomic_output, remove_leftovers
from ..weights.checkpoint_io import CheckpointError, check_resumable, read_checkpoint

# What FaultToleranceHook saves when a signal stops training.
PREEMPTION_CHECKPOINT = 'preempted.pth'
# The checkpoints a run can be resumed from: CheckpointHook's by epoch or iteration, and ours.
RESUMABLE_NAME = re.compile(r'(epoch|iter)_\d+\.pth|' + re.escape(PREEMPTION_CHECKPOINT))
# The file in which mmengine's CheckpointHook names the last checkpoint it saved.
LAST_CHECKPOINT = 'last_checkpoint'


def atomic_save_checkpoint(
    save: Callable[..., Any], out_dir: str, filename: str, file_client_args: Optional[dict] = None, **kwargs: Any
) -> None:
    """Runs ``Runner.save_checkpoint`` through a temporary file that is flushed to disk, then renamed.

    A kill at any moment leaves either the previous file or the complete new one under
    ``filename``. A failed write (a full disk, a read-only folder) is one ``CheckpointError`` and leaves
    no file behind. Remote folders (``s3://...``) and explicit file backends are passed through.

    Args:
        save: The runner's own ``save_checkpoint``, called with a temporary name in ``out_dir``.
        out_dir: The folder of the checkpoint.
        filename: The checkpoint's name in ``out_dir``.
        file_client_args: As ``Runner.save_checkpoint`` takes it (CheckpointHook passes it by position).
        **kwargs: ``save``'s other arguments.
    """
    if '://' in str(out_dir) or file_client_args or kwargs.get('backend_args'):
        save(out_dir, filename, file_client_args, **kwargs)
        return
    path = Path(out_dir) / filename
    remove_leftovers(path)  # what an earlier, killed save of the same file left
    try:
        with atomic_output(path) as temporary:
            save(out_dir, temporary.name, **kwargs)
    except OSError as error:
        raise CheckpointError(f'cannot save checkpoint {path}: {error.strerror or error}') from error


def write_last_checkpoint(work_dir: Union[str, Path], checkpoint: str) -> None:
    """Names ``checkpoint`` in the work dir's ``last_checkpoint`` file, as CheckpointHook does, atomically."""
    with atomic_output(Path(work_dir) / LAST_CHECKPOINT) as temporary:
        temporary.write_text(checkpoint)


def _named_last(work_dir: Path) -> Optional[Path]:
    """The checkpoint that ``last_checkpoint`` names, which may lie outside the work dir."""
    try:
        named = Path((work_dir / LAST_CHECKPOINT).read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None
    return named if named.name and named.is_file() else None


def resumable_candidates(work_dir: Union[str, Path]) -> list[Path]:
    """The checkpoints of a work dir that a run could resume from, newest (last written) first."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return []
    paths = {p.resolve() for p in work_dir.iterdir() if RESUMABLE_NAME.fullmatch(p.name) and p.is_file()}
    named = _named_last(work_dir)
    if named is not None:
        paths.add(named.resolve())
    return sorted(paths, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def find_resumable_checkpoint(work_dir: Union[str, Path]) -> Optional[str]:
    """The newest checkpoint in ``work_dir`` that reads correctly, or None if the work dir has none.

    Each unreadable newer one is reported in one line. Checkpoints that all fail to read are an
    error: the run must not silently start from scratch.
    """
    candidates = resumable_candidates(work_dir)
    if not candidates:
        print_log(f'no checkpoint in {work_dir} to resume from: training starts from scratch', logger='current')
        return None
    errors = []
    for path in candidates:
        try:
            check_resumable(read_checkpoint(str(path))[0], str(path))
        except CheckpointError as error:
            errors.append(error)
            print_log(f'{error}; trying an older checkpoint', logger='current', level=logging.WARNING)
            continue
        return str(path)
    raise CheckpointError(
        f'none of the {len(candidates)} checkpoints in {work_dir} can be resumed from; newest: {errors[0]}'
    )
