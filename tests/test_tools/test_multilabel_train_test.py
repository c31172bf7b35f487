"""The CheXNet-style multi-label configs trained and tested by tools/train.py and tools/test.py on a tiny folder."""

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from mmdensenet.analysis.curves import find_scalar_log
from tests.cli_helpers import REPO, assert_ok, assert_one_line_error, python

CONFIGS = REPO / 'configs' / 'multilabel'
CLASSES = ('Effusion', 'Mass', 'Nodule')
METRICS = ('multi-label/precision', 'multi-label/recall', 'multi-label/f1-score', 'multi-label/mAP', 'auroc/mean')


def write_multilabel_folder(root: Path) -> Path:
    """Grey 32x32 images, a finding a bright square in its own corner, in mmpretrain's multi-label format.

    The labels run through every combination of the three findings, none included, so every class
    has positives and negatives in each split.
    """
    rng = np.random.default_rng(0)
    (root / 'images').mkdir(parents=True)
    (root / 'meta').mkdir()
    corners = [(0, 0), (0, 16), (16, 0)]
    for split, copies in (('train', 2), ('val', 1)):
        data_list = []
        for i, combination in enumerate(np.ndindex(2, 2, 2)):
            for copy in range(copies):
                pixels = rng.integers(0, 60, (32, 32), dtype=np.uint8)
                labels = [c for c, present in enumerate(combination) if present]
                for c in labels:
                    y, x = corners[c]
                    pixels[y : y + 16, x : x + 16] = 220
                name = f'{split}_{i}_{copy}.png'
                Image.fromarray(pixels, mode='L').save(root / 'images' / name)
                data_list.append(dict(img_path=name, gt_label=labels))
        annotation = dict(metainfo=dict(classes=list(CLASSES)), data_list=data_list)
        (root / 'meta' / f'{split}.json').write_text(json.dumps(annotation))
    return root


@pytest.fixture(scope='module')
def multilabel_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_multilabel_folder(tmp_path_factory.mktemp('multilabel'))


def tiny_config(folder: Path, base: Path, path: Path) -> Path:
    """``base`` with a tiny DenseNet, no pretrained weights, three findings and small batches on ``folder``."""
    arch = dict(_delete_=True, growth_rate=8, depths=(1, 2, 3, 4), init_channels=16)
    loader = f'dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(data_root={str(folder)!r}))'
    path.write_text(
        f"""_base_ = [{str(base)!r}]
model = dict(backbone=dict(arch={arch!r}, init_cfg=None), head=dict(num_classes=3, in_channels=51))
data_preprocessor = dict(num_classes=3)
train_dataloader = {loader}
val_dataloader = {loader}
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
"""
    )
    return path


@pytest.mark.parametrize('variant', ['', '-rgb'], ids=['grey', 'rgb'])
def test_trains_and_tests_with_multilabel_metrics(multilabel_folder: Path, tmp_path: Path, variant: str) -> None:
    base = CONFIGS / f'densenet121_chexnet-style_multilabel{variant}.py'
    config = tiny_config(multilabel_folder, base, tmp_path / f'tiny-multilabel{variant}.py')
    work_dir = tmp_path / 'work_dir'
    assert_ok(python(REPO / 'tools' / 'train.py', config, '--work-dir', work_dir))

    records = [json.loads(line) for line in find_scalar_log(work_dir).read_text().splitlines()]
    val = [r for r in records if 'loss' not in r]
    assert [r['step'] for r in val] == [1, 2]
    for record in val:
        assert set(METRICS) | {f'auroc/{name}' for name in CLASSES} <= set(record)
        assert 0 <= record['auroc/mean'] <= 1

    out = tmp_path / 'predictions.pkl'
    result = python(REPO / 'tools' / 'test.py', config, work_dir / 'epoch_2.pth', '--work-dir', tmp_path / 'test',
                    '--out', out)  # fmt: skip
    assert_ok(result)
    printed = {key: float(re.search(rf'{re.escape(key)}: ([\d.]+)', result.stdout).group(1)) for key in METRICS}
    # The test's AUROC is scikit-learn's on the predictions it dumps: sigmoid scores of the 8 val images.
    predictions = pickle.loads(out.read_bytes())
    scores = np.stack([p['pred_score'].numpy() for p in predictions])
    targets = np.zeros_like(scores)
    for row, p in zip(targets, predictions):
        row[p['gt_label'].numpy()] = 1
    assert scores.shape == (8, 3) and ((scores > 0) & (scores < 1)).all()
    expected = [roc_auc_score(targets[:, c], scores[:, c]) for c in range(3)]
    assert printed['auroc/mean'] == pytest.approx(np.mean(expected), abs=1e-4)
    assert printed['auroc/mean'] == pytest.approx(val[-1]['auroc/mean'], abs=1e-4)


def test_a_finding_outside_the_heads_is_one_line(multilabel_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / 'folder'
    (folder / 'meta').mkdir(parents=True)
    (folder / 'images').symlink_to(multilabel_folder / 'images')
    annotation = json.loads((multilabel_folder / 'meta' / 'train.json').read_text())
    annotation['data_list'][5]['gt_label'] = [1, 3]  # a fourth finding, for a head of three
    (folder / 'meta' / 'train.json').write_text(json.dumps(annotation))
    (folder / 'meta' / 'val.json').write_bytes((multilabel_folder / 'meta' / 'val.json').read_bytes())
    before = {p: p.read_bytes() for p in (folder / 'meta').iterdir()}

    config = tiny_config(folder, CONFIGS / 'densenet121_chexnet-style_multilabel.py', tmp_path / 'tiny.py')
    result = python(REPO / 'tools' / 'train.py', config, '--work-dir', tmp_path / 'work_dir')
    name = annotation['data_list'][5]['img_path']
    assert_one_line_error(result, f'train_dataloader.dataset: the sample {folder / "images" / name} has label 3')
    assert {p: p.read_bytes() for p in (folder / 'meta').iterdir()} == before


def test_a_missing_annotation_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / 'empty').mkdir()
    config = tiny_config(tmp_path / 'empty', CONFIGS / 'densenet121_chexnet-style_multilabel.py', tmp_path / 'tiny.py')
    result = python(REPO / 'tools' / 'train.py', config, '--work-dir', tmp_path / 'work_dir')
    missing = tmp_path / 'empty' / 'meta' / 'train.json'
    assert_one_line_error(
        result, f"train_dataloader.dataset: FileNotFoundError: [Errno 2] No such file or directory: '{missing}'"
    )
