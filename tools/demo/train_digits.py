"""Train a small DenseNet on scikit-learn's digits, end to end on a laptop CPU.

    python tools/demo/train_digits.py [--data-root data/digits] [--work-dir DIR] [--out curves.png]

The 1,797 8x8 images that ship with scikit-learn are written once into an ImageNet-style folder,
a CIFAR-style DenseNet-BC trains on 80% of them through tools/train.py (the path every config
takes), and the script prints the accuracy on the held-out 20% and plots the training curves.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mmdensenet.analysis.curves import find_scalar_log, plot_training_curves, read_scalar_log
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'digits' / 'densenet-bc-l22-k12_1xb64-16e_digits.py'
SPLITS = ('train', 'val')


class Digits(NamedTuple):
    """scikit-learn's digits as 0-255 grey images, their labels, and the demo's split of their indices."""

    pixels: np.ndarray
    labels: np.ndarray
    splits: dict[str, np.ndarray]


def split_digits(val_fraction: float = 0.2, seed: int = 0) -> Digits:
    """The digits with a stratified split into ``train`` and ``val`` (``val_fraction`` of each digit)."""
    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # 0-16 grey levels to 0-255
    indices = np.arange(len(pixels))
    parts = train_test_split(indices, test_size=val_fraction, stratify=digits.target, random_state=seed)
    return Digits(pixels, digits.target, {split: np.sort(part) for split, part in zip(SPLITS, parts)})


@contextmanager
def staged_folder(root: Path) -> Iterator[Path]:
    """A folder written beside ``root`` and renamed to it once complete, so ``root`` appears whole or not at all."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{root.name}.', dir=root.parent))
    try:
        yield staging
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_digit(pixels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode='L').save(path)


def write_digits(root: Path) -> None:
    """Writes the digits as PNGs under ``root/{train,val}/<label>/`` with ``root/meta/{train,val}.txt``."""
    digits = split_digits()
    with staged_folder(root) as staging:
        (staging / 'meta').mkdir()
        for split, chosen in digits.splits.items():
            lines = []
            for index in chosen:
                label = digits.labels[index]
                name = f'{label}/{index:04d}.png'
                save_digit(digits.pixels[index], staging / split / name)
                lines.append(f'{name} {label}\n')
            (staging / 'meta' / f'{split}.txt').write_text(''.join(lines))


def train(config: Path, work_dir: Path, options: list[str]) -> None:
    """Trains ``config`` with tools/train.py, its ``--cfg-options`` ``options``, into ``work_dir``."""
    command = [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir', str(work_dir)]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))}
    # The net is too small for intra-op threads to pay off; one thread also keeps the run
    # fast on a busy machine, where competing thread pools slow each other down many times.
    env.setdefault('OMP_NUM_THREADS', '1')
    if subprocess.run([*command, '--cfg-options', *options], env=env).returncode:
        raise ToolError('training failed (see its log above)')


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', type=Path, default=Path('data/digits'), help='where the images go (once)')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs') / CONFIG.stem)
    parser.add_argument('--out', type=Path, help='the curves PNG (default: WORK_DIR/curves.png)')
    args = parser.parse_args()

    if not (args.data_root / 'meta' / 'val.txt').is_file():
        if args.data_root.exists():
            raise ToolError(f'{args.data_root} exists but holds no digits (no meta/val.txt); remove it or pick another')
        write_digits(args.data_root)
        print(f'wrote the digits to {args.data_root}')
    data_roots = [f'{loader}.dataset.data_root={args.data_root}' for loader in ('train_dataloader', 'val_dataloader')]
    train(CONFIG, args.work_dir, data_roots)

    log_file = find_scalar_log(args.work_dir)
    final = read_scalar_log(log_file).val[-1]
    print(f'held-out accuracy after {final["step"]} epochs: top-1 {final["accuracy/top1"]:.2f}%')
    out = plot_training_curves(log_file, args.out or args.work_dir / 'curves.png')
    print(f'curves written to {out}')


if __name__ == '__main__':
    run_cli(main)
