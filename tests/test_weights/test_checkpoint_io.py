"""Reading untrusted checkpoint files and writing them atomically."""

import hashlib
import os
from pathlib import Path

import pytest
import torch
from weight_helpers import RunsCommand

from mmdensenet.weights import CheckpointError, read_checkpoint, save_atomically, unwrap_state_dict


def test_read_returns_the_checkpoint_and_the_file_hash(tmp_path: Path) -> None:
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.arange(3)}, 'meta': {'epoch': 2}}, path)
    checkpoint, digest = read_checkpoint(str(path))
    assert torch.equal(checkpoint['state_dict']['w'], torch.arange(3)) and checkpoint['meta'] == {'epoch': 2}
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_refuses_code_and_garbage(tmp_path: Path) -> None:
    marker = tmp_path / 'code_ran'
    malicious = tmp_path / 'malicious.pth'
    torch.save({'w': torch.zeros(1), 'payload': RunsCommand(f'touch {marker}')}, malicious)
    with pytest.raises(CheckpointError, match=r'refusing .*malicious.pth: it refers to code.*posix.system'):
        read_checkpoint(str(malicious))
    assert not marker.exists()

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'\x80\x02not a checkpoint' * 10)
    with pytest.raises(CheckpointError, match=r'garbage.pth is not a PyTorch checkpoint'):
        read_checkpoint(str(garbage))
    (tmp_path / 'empty.pth').touch()
    with pytest.raises(CheckpointError, match=r'empty.pth is empty'):
        read_checkpoint(str(tmp_path / 'empty.pth'))
    with pytest.raises(CheckpointError, match=r'cannot read .*absent.pth: No such file'):
        read_checkpoint(str(tmp_path / 'absent.pth'))
    with pytest.raises(CheckpointError, match='cannot read'):
        read_checkpoint(str(tmp_path))


def test_unwrap_finds_the_tensors() -> None:
    tensors = {'a': torch.zeros(1), 'b': torch.ones(2)}
    for checkpoint in (tensors, {'state_dict': tensors, 'meta': {}}, {'model': tensors, 'epoch': 1}):
        assert unwrap_state_dict(checkpoint, 'f.pth') == tensors
    with pytest.raises(CheckpointError, match=r'f.pth holds no state dict'):
        unwrap_state_dict([torch.zeros(1)], 'f.pth')
    with pytest.raises(CheckpointError, match=r"f.pth is not a state dict: 'epoch' is not a named tensor"):
        unwrap_state_dict({'a': torch.zeros(1), 'epoch': 3}, 'f.pth')


def test_save_writes_in_place_of_the_target_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / 'new' / 'folder' / 'weights.pth'
    digest = save_atomically({'w': torch.arange(4)}, str(target))
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    assert torch.equal(torch.load(target, weights_only=True)['w'], torch.arange(4))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask

    with pytest.raises(Exception, match=r"Can't pickle"):
        save_atomically({'w': torch.zeros(1), 'function': lambda: None}, str(target))
    assert torch.equal(torch.load(target, weights_only=True)['w'], torch.arange(4))
    assert [path.name for path in target.parent.iterdir()] == ['weights.pth']
