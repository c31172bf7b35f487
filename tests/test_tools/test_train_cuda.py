"""tools/train.py --amp on a CUDA GPU: ``python -m pytest -m cuda`` (skipped without one)."""

import math
from pathlib import Path

import pytest
import torch

from mmdensenet.analysis.curves import find_scalar_log, read_scalar_log
from mmdensenet.weights.checkpoint_io import read_checkpoint
from tests.cli_helpers import REPO, assert_ok, python

TRAIN = REPO / 'tools' / 'train.py'

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]


@pytest.mark.parametrize('memory_efficient', [False, True])
def test_amp_training_iteration(tiny_config: Path, tmp_path: Path, memory_efficient: bool) -> None:
    options = ['train_cfg.max_epochs=1', f'model.backbone.memory_efficient={memory_efficient}']
    assert_ok(python(TRAIN, tiny_config, '--amp', '--work-dir', tmp_path, '--cfg-options', *options))
    log = read_scalar_log(find_scalar_log(tmp_path))
    assert log.train and all(math.isfinite(r['loss']) for r in log.train)
    checkpoint, _ = read_checkpoint(str(tmp_path / 'epoch_1.pth'))
    assert 'loss_scaler' in checkpoint['optimizer']  # the AMP wrapper's scaler state was saved
    assert all(t.device.type == 'cpu' for t in checkpoint['state_dict'].values())
