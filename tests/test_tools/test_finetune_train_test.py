"""The fine-tuning configs trained and tested by tools/train.py and tools/test.py on a tiny folder of class folders."""

import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import (
    NUM_CLASSES,
    REPO,
    TINY_ARCH,
    assert_ok,
    assert_one_line_error,
    python,
    write_tiny_config,
)
from tests.weight_helpers import mmpretrain_classifier

CONFIG = REPO / 'configs' / 'finetune' / 'densenet121_in1k-pre_1xb32-30e_custom.py'


@pytest.fixture(scope='module')
def imagenet_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mmpretrain classifier's checkpoint with a 1000-class head, as the table's files are."""
    arch = {key: value for key, value in TINY_ARCH.items() if key != '_delete_'}
    path = tmp_path_factory.mktemp('checkpoints') / 'tiny_in1k.pth'
    torch.save({'state_dict': mmpretrain_classifier(arch).state_dict()}, path)
    return path


def tiny_config(folder: Path, checkpoint: Path, path: Path) -> Path:
    """The fine-tuning config: a tiny DenseNet from ``checkpoint``, three classes, small batches on ``folder``."""
    model = f"""model = dict(
    backbone=dict(arch={TINY_ARCH!r}, init_cfg=dict(checkpoint={str(checkpoint)!r})),
    head=dict(num_classes={NUM_CLASSES}, in_channels=51),
)"""
    return write_tiny_config(path, CONFIG, folder, model, batch_size=2)


def test_fine_tunes_a_new_head_from_the_backbone_and_tests(
    imagenet_folder: Path, imagenet_classifier: Path, tmp_path: Path
) -> None:
    config = tiny_config(imagenet_folder, imagenet_classifier, tmp_path / 'tiny-finetune.py')
    work_dir = tmp_path / 'work_dir'
    result = python(REPO / 'tools' / 'train.py', config, '--work-dir', work_dir)
    assert_ok(result)
    log = result.stdout + result.stderr
    loaded = (
        rf'loaded all \d+ tensors of the backbone from {re.escape(str(imagenet_classifier))} \(classifier or detector'
    )
    assert re.search(loaded, log), log[-3000:]

    trained = torch.load(work_dir / 'epoch_2.pth', weights_only=False)
    assert trained['state_dict']['head.fc.weight'].shape == (NUM_CLASSES, 51)
    assert trained['meta']['dataset_meta']['classes'] == ('class0', 'class1', 'class2')  # the folders' names

    result = python(REPO / 'tools' / 'test.py', config, work_dir / 'epoch_2.pth', '--work-dir', tmp_path / 'test')
    assert_ok(result)
    assert re.search(r'accuracy/top1: [\d.]+', result.stdout)


def test_a_class_folder_beyond_the_heads_classes_is_one_line(
    imagenet_folder: Path, imagenet_classifier: Path, tmp_path: Path
) -> None:
    folder = tmp_path / 'folder'
    shutil.copytree(imagenet_folder, folder)
    shutil.copytree(folder / 'train' / 'class2', folder / 'train' / 'class3')
    config = tiny_config(folder, imagenet_classifier, tmp_path / 'tiny.py')
    result = python(REPO / 'tools' / 'train.py', config, '--work-dir', tmp_path / 'work_dir')
    assert_one_line_error(result, f'train_dataloader.dataset: the sample {folder / "train" / "class3"}')
    assert 'has label 3' in result.stderr


def test_a_missing_folder_is_one_line(imagenet_classifier: Path, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / 'absent', imagenet_classifier, tmp_path / 'tiny.py')
    result = python(REPO / 'tools' / 'train.py', config, '--work-dir', tmp_path / 'work_dir')
    assert_one_line_error(result, 'train_dataloader.dataset: ')
    assert str(tmp_path / 'absent' / 'train') in result.stderr
