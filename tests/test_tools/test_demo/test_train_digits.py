"""The quick start's demo: scikit-learn's digits written once as an image folder, then a DenseNet trained on it."""

import importlib.util
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdensenet.analysis.curves import find_scalar_log, read_scalar_log
from tests.cli_helpers import REPO, assert_ok, assert_one_line_error, python

SCRIPT = REPO / 'tools' / 'demo' / 'train_digits.py'


def load_script():
    spec = importlib.util.spec_from_file_location('train_digits', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('data') / 'digits'
    load_script().write_digits(root)
    return root


def read_split(root: Path, split: str) -> list[tuple[str, int]]:
    lines = (root / 'meta' / f'{split}.txt').read_text().splitlines()
    return [(name, int(label)) for name, label in (line.split() for line in lines)]


def test_writes_a_stratified_image_folder(digits_root: Path) -> None:
    train, val = read_split(digits_root, 'train'), read_split(digits_root, 'val')
    assert (len(train), len(val)) == (1437, 360)
    assert not {name for name, _ in train} & {name for name, _ in val}
    val_counts = Counter(label for _, label in val)
    assert sorted(val_counts) == list(range(10)) and min(val_counts.values()) >= 35
    for split, items in (('train', train), ('val', val)):
        assert sorted(p.relative_to(digits_root / split).as_posix() for p in (digits_root / split).rglob('*.png')) == (
            sorted(name for name, _ in items)
        )
    name, label = val[0]
    image = Image.open(digits_root / 'val' / name)
    assert (image.size, image.mode) == ((8, 8), 'L') and name.startswith(f'{label}/')
    assert np.asarray(image).max() == 255
    assert sorted(p.name for p in digits_root.parent.iterdir()) == ['digits']  # no staging folder left


def test_demo_trains_to_97_percent_and_plots_its_curves(digits_root: Path, tmp_path: Path) -> None:
    work_dir, out = tmp_path / 'work_dir', tmp_path / 'curves.png'
    result = python(SCRIPT, '--data-root', digits_root, '--work-dir', work_dir, '--out', out)
    assert_ok(result)
    assert 'wrote the digits' not in result.stdout  # the folder is written once
    final = read_scalar_log(find_scalar_log(work_dir)).val[-1]
    assert final['step'] == 16 and final['accuracy/top1'] >= 97
    printed = re.search(r'held-out accuracy after 16 epochs: top-1 ([\d.]+)%', result.stdout)
    assert float(printed.group(1)) == pytest.approx(final['accuracy/top1'], abs=0.01)
    assert out.read_bytes().startswith(b'\x89PNG')


def test_a_folder_without_digits_is_one_line(tmp_path: Path) -> None:
    (tmp_path / 'digits').mkdir()
    result = python(SCRIPT, '--data-root', tmp_path / 'digits', '--work-dir', tmp_path / 'work_dir')
    assert_one_line_error(result, 'holds no digits (no meta/val.txt)')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['digits']


def test_failed_training_is_one_line_after_its_log(digits_root: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / 'work_dir'
    work_dir.write_text('a file where the work dir should be')
    result = python(SCRIPT, '--data-root', digits_root, '--work-dir', work_dir)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == 'error: training failed (see its log above)'
