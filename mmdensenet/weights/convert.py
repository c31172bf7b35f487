"""Converting checkpoint files between torchvision's DenseNet and our classifier configs."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mmdensenet.outputs import check_output
from mmdensenet.version import __version__

from .checkpoint_io import (
    CheckpointError,
    StateDict,
    errors_about,
    local_checkpoint,
    read_checkpoint,
    save_atomically,
    unwrap_state_dict,
)
from .torchvision_keys import check_state_dict, detect_arch, to_our_key, to_torchvision_key


@dataclass
class Conversion:
    """What a conversion wrote."""

    arch: str
    tensors: int
    filled: int  # num_batches_tracked tensors the source lacked, written as 0
    output: str
    sha256: str

    def summary(self) -> str:
        filled = f' ({self.filled} num_batches_tracked set to 0)' if self.filled else ''
        lines = (f'arch: DenseNet-{self.arch}', f'tensors: {self.tensors}{filled}', f'output: {self.output}')
        return '\n'.join((*lines, f'sha256: {self.sha256}'))


def _read(src: str, dst: str) -> tuple[StateDict, str]:
    """The state dict in ``src`` (a file or an http(s) URL) and the file's sha256, after refusing a ``dst`` over it."""
    check_output(dst, src)
    checkpoint, sha256 = read_checkpoint(local_checkpoint(src))
    return unwrap_state_dict(checkpoint, src), sha256


def _check_arch(found: str, requested: Optional[str]) -> None:
    if requested is not None and requested != found:
        raise CheckpointError(f'it holds DenseNet-{found}, not the requested DenseNet-{requested}')


def from_torchvision(src: str, dst: str, arch: Optional[str] = None) -> Conversion:
    """Converts a torchvision DenseNet checkpoint into a checkpoint for our classifier configs.

    The output holds ``state_dict`` (backbone and head) and ``meta`` (arch and source file).
    """
    torchvision_state, source_sha256 = _read(src, dst)
    with errors_about(src):
        renamed = {to_our_key(key): tensor for key, tensor in torchvision_state.items()}
        found = detect_arch(renamed)
        _check_arch(found, arch)
    state_dict = check_state_dict(renamed, found, src, display_key=to_torchvision_key)
    meta = dict(
        arch=found,
        converted_from='torchvision',
        source=Path(src).name,
        source_sha256=source_sha256,
        mmdensenet_version=__version__,
    )
    sha256 = save_atomically(dict(state_dict=state_dict, meta=meta), dst)
    return Conversion(found, len(state_dict), len(state_dict) - len(renamed), dst, sha256)


def to_torchvision(src: str, dst: str, arch: Optional[str] = None) -> Conversion:
    """Writes the weights of one of our (or mmpretrain's) checkpoints as a torchvision state dict.

    The output loads with ``torchvision.models.densenet{arch}().load_state_dict(strict=True)``.
    """
    state_dict, _ = _read(src, dst)
    with errors_about(src):
        found = detect_arch(state_dict)
        _check_arch(found, arch)
    checked = check_state_dict(state_dict, found, src)
    torchvision_state = {to_torchvision_key(key): tensor for key, tensor in checked.items()}
    sha256 = save_atomically(torchvision_state, dst)
    return Conversion(found, len(torchvision_state), len(checked) - len(state_dict), dst, sha256)
