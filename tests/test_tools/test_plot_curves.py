"""tools/analysis_tools/plot_curves.py on the log of a real (tiny) mmengine training run."""

import os
from pathlib import Path

import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from PIL import Image
from torch.utils.data import Dataset

import mmdensenet  # noqa: F401  (registers mmdensenet.DenseNet)
from tests.cli_helpers import assert_one_line_error, run_tool

TOOL = 'analysis_tools/plot_curves.py'
NUM_CLASSES = 6


class RandomImages(Dataset):
    """Random 16x16 images with random labels, in the form mmpretrain's models take."""

    metainfo = dict(classes=tuple(f'class{i}' for i in range(NUM_CLASSES)))

    def __init__(self, size: int) -> None:
        generator = torch.Generator().manual_seed(size)
        self.images = torch.randint(0, 256, (size, 3, 16, 16), generator=generator, dtype=torch.uint8)
        self.labels = torch.randint(0, NUM_CLASSES, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.images[index], data_samples=DataSample().set_gt_label(self.labels[index]))


def _loader(size: int, shuffle: bool) -> dict:
    return dict(
        dataset=RandomImages(size),
        batch_size=4,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
    )


@pytest.fixture(scope='module')
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work_dir holding the logs of 2 epochs of training a tiny DenseNet, validated each epoch."""
    work_dir = tmp_path_factory.mktemp('run')
    runner = Runner(
        model=dict(
            type='ImageClassifier',
            data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3),
            backbone=dict(
                type='mmdensenet.DenseNet',
                arch=dict(growth_rate=4, depths=(1, 1), init_channels=8, stem='cifar'),
            ),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=10, topk=(1, 5)),
        ),
        work_dir=str(work_dir),
        train_dataloader=_loader(16, shuffle=True),
        val_dataloader=_loader(8, shuffle=False),
        val_evaluator=dict(type='Accuracy', topk=(1, 5)),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1), checkpoint=None),
        default_scope='mmpretrain',
    )
    runner.train()
    return work_dir


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == 'PNG'
        assert image.width > 300 and image.height > 200


@pytest.mark.parametrize('which', ['work_dir', 'scalars.json', 'timestamp.json'])
def test_plots_a_real_run(work_dir: Path, tmp_path: Path, which: str) -> None:
    vis_data = next(work_dir.glob('*/vis_data'))
    log = {
        'work_dir': work_dir,
        'scalars.json': vis_data / 'scalars.json',
        'timestamp.json': vis_data / f'{vis_data.parent.name}.json',
    }[which]
    out = tmp_path / 'curves.png'
    result = run_tool(TOOL, log, '--out', out)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    assert_png(out)


@pytest.mark.parametrize(
    'make_input, expected',
    [
        (lambda tmp: tmp / 'missing', 'no such file or folder'),
        (lambda tmp: tmp, 'no vis_data/scalars.json'),
        (lambda tmp: _write(tmp / 'broken.json', '{"loss": 1.0, "step": 1}\n{"loss": 0.'), 'broken.json:2 is not JSON'),
        (lambda tmp: _write(tmp / 'no_loss.json', '{"accuracy/top1": 50.0, "step": 1}\n'), 'no training loss'),
        (lambda tmp: _write_bytes(tmp / 'events.bin', b'\x08\x80\xff\x00' * 64), 'events.bin:1 is not text'),
        (lambda tmp: _pipe(tmp / 'scalars.json'), 'scalars.json is a named pipe'),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, make_input, expected: str) -> None:
    out = tmp_path / 'curves.png'
    assert_one_line_error(run_tool(TOOL, make_input(tmp_path), '--out', out, timeout=300), expected)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _pipe(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_never_overwrites_its_log(work_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / 'log.png'  # a scalar log under a PNG's name
    log.write_bytes(next(work_dir.glob('*/vis_data/scalars.json')).read_bytes())
    before = log.read_bytes()
    assert_one_line_error(run_tool(TOOL, log, '--out', log), 'refusing to overwrite an input')
    assert log.read_bytes() == before
