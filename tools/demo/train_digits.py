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
from pathlib import Path

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


def write_digits(root: Path, val_fraction: float = 0.2, seed: int = 0) -> None:
    """Writes the digits as PNGs under ``root/{train,val}/<label>/`` with ``root/meta/{train,val}.txt``.

    The folder appears complete or not at all: it is written beside ``root`` and then renamed.
    """
    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # 0-16 grey levels to 0-255
    indices = np.arange(len(pixels))
    split_indices = dict(
        zip(SPLITS, train_test_split(indices, test_size=val_fraction, stratify=digits.target, random_state=seed))
    )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{root.name}.', dir=root.parent))
    try:
        (staging / 'meta').mkdir()
        for split, chosen in split_indices.items():
            lines = []
            for index in sorted(chosen):
                label = digits.target[index]
                name = f'{label}/{index:04d}.png'
                (staging / split / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels[index], mode='L').save(staging / split / name)
                lines.append(f'{name} {label}\n')
            (staging / 'meta' / f'{split}.txt').write_text(''.join(lines))
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def train(data_root: Path, work_dir: Path) -> None:
    """Trains the demo config on ``data_root`` with tools/train.py."""
    data_roots = [f'{loader}.dataset.data_root={data_root}' for loader in ('train_dataloader', 'val_dataloader')]
    command = [sys.executable, str(REPO / 'tools' / 'train.py'), str(CONFIG), '--work-dir', str(work_dir)]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))}
    # The net is too small for intra-op threads to pay off; one thread also keeps the run
    # fast on a busy machine, where competing thread pools slow each other down many times.
    env.setdefault('OMP_NUM_THREADS', '1')
    if subprocess.run([*command, '--cfg-options', *data_roots], env=env).returncode:
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
    train(args.data_root, args.work_dir)

    log_file = find_scalar_log(args.work_dir)
    final = read_scalar_log(log_file).val[-1]
    print(f'held-out accuracy after {final["step"]} epochs: top-1 {final["accuracy/top1"]:.2f}%')
    out = plot_training_curves(log_file, args.out or args.work_dir / 'curves.png')
    print(f'curves written to {out}')


if __name__ == '__main__':
    run_cli(main)
