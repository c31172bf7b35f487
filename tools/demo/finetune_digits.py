"""Fine-tune a DenseNet pre-trained on the digits 0-4 on a few labelled 5-9s, against training from scratch.

    python tools/demo/finetune_digits.py [--data-root data/digits-transfer] [--work-dir DIR]
        [--shots 10] [--seeds 0 1 2] [--frozen-stages -1] [--out DIR/results.json]

The worked example of docs/fine_tuning.md, on scikit-learn's digits split as the digits demo splits
them. The demo's net is pre-trained on the digits 0-4. Then, for each seed, SHOTS training images of
each digit 5-9 are drawn, and the net learns them twice, with the same recipe: once from the
pre-trained backbone (a new head), once from scratch. Both are evaluated on the held-out 5-9s. Every
run is tools/train.py on a config of configs/finetune/; the image folders are written once each.
"""

import json
import statistics
from pathlib import Path
from typing import Optional

import numpy as np
from train_digits import REPO, save_digit, split_digits, staged_folder, train

from mmdensenet.analysis.curves import find_scalar_log, read_scalar_log
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError
from mmdensenet.outputs import atomic_output, check_output, writable_folder

CONFIGS = REPO / 'configs' / 'finetune'
PRETRAIN = CONFIGS / 'densenet-bc-l22-k12_1xb64-16e_digits0-4.py'
SCRATCH = CONFIGS / 'densenet-bc-l22-k12_1xb16-40e_digits5-9-few.py'
FINETUNE = CONFIGS / 'densenet-bc-l22-k12_digits0-4-pre_1xb16-40e_digits5-9-few.py'
OLD, NEW = range(5), range(5, 10)  # the digits pre-trained on, and those fine-tuned on


def write_folder(root: Path, images: dict[int, np.ndarray]) -> Path:
    """Writes class folders ``root/<digit>/<index>.png`` of the digits at ``images[digit]``, once."""
    if root.is_dir():
        return root
    digits = split_digits()
    with staged_folder(root) as staging:
        for digit, indices in images.items():
            for index in indices:
                save_digit(digits.pixels[index], staging / str(digit) / f'{index:04d}.png')
    return root


def of_digits(split: str, wanted: range) -> dict[int, np.ndarray]:
    """The indices of each digit in ``wanted`` in the demo's ``split``."""
    digits = split_digits()
    chosen = digits.splits[split]
    return {digit: chosen[digits.labels[chosen] == digit] for digit in wanted}


def few_shots(shots: int, seed: int) -> dict[int, np.ndarray]:
    """``shots`` training images of each new digit, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    available = of_digits('train', NEW)
    fewest = min(len(indices) for indices in available.values())
    if not 1 <= shots <= fewest:
        raise ToolError(f'--shots must be from 1 to {fewest} (the training images of the rarest digit), got {shots}')
    return {digit: np.sort(rng.choice(indices, shots, replace=False)) for digit, indices in available.items()}


def held_out_top1(config: Path, work_dir: Path, options: list[str]) -> float:
    """Trains ``config`` into ``work_dir`` and returns its last validation top-1 (%)."""
    train(config, work_dir, options)
    return read_scalar_log(find_scalar_log(work_dir)).val[-1]['accuracy/top1']


def loaders_on(data_root: Path, train_prefix: Optional[str] = None) -> list[str]:
    options = [f'{loader}.dataset.data_root={data_root}' for loader in ('train_dataloader', 'val_dataloader')]
    return options + ([f'train_dataloader.dataset.data_prefix={train_prefix}'] if train_prefix else [])


def epochs_option(epochs: Optional[int]) -> list[str]:
    return [f'train_cfg.max_epochs={epochs}'] if epochs else []


def summary(runs: list[dict], method: str) -> dict:
    values = [run[method] for run in runs]
    return dict(mean=statistics.mean(values), std=statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', type=Path, default=Path('data/digits-transfer'), help='where images go (once)')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/finetune_digits'))
    parser.add_argument('--shots', type=int, default=10, help='labelled training images of each digit 5-9')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='one run of each method per seed')
    parser.add_argument(
        '--frozen-stages',
        type=int,
        default=-1,
        choices=range(-1, 4),
        help='fine-tuning keeps the stem (0) and the first k dense blocks (k) as pre-trained; -1 trains all',
    )
    parser.add_argument('--pretrain-epochs', type=int, help="instead of the pre-training config's")
    parser.add_argument('--epochs', type=int, help="instead of the fine-tuning configs' (both)")
    parser.add_argument('--out', type=Path, help='the results, JSON (default: WORK_DIR/results.json)')
    args = parser.parse_args()
    for name in ('pretrain_epochs', 'epochs'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ToolError(f'--{name.replace("_", "-")} must be at least 1, got {getattr(args, name)}')
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ToolError(f'--seeds must be distinct non-negative integers, got {args.seeds}')
    out = check_output(args.out or args.work_dir / 'results.json')
    shots = {seed: few_shots(args.shots, seed) for seed in args.seeds}  # a bad --shots fails before any work
    data_root = writable_folder(args.data_root, 'the data root')

    pretrain_data = data_root / 'pretrain'
    for split in ('train', 'val'):
        write_folder(pretrain_data / split, of_digits(split, OLD))
    finetune_data = data_root / 'finetune'
    write_folder(finetune_data / 'val', of_digits('val', NEW))
    pretrain_dir = args.work_dir / 'pretrain'
    pretrain_top1 = held_out_top1(
        PRETRAIN, pretrain_dir, loaders_on(pretrain_data) + epochs_option(args.pretrain_epochs)
    )
    checkpoint = (pretrain_dir / 'last_checkpoint').read_text().strip()
    print(f'pre-trained on the digits 0-4: held-out top-1 {pretrain_top1:.2f}%, {checkpoint}')

    runs, frozen = [], args.frozen_stages
    for seed, images in shots.items():
        prefix = f'train-{args.shots}shot-seed{seed}'
        write_folder(finetune_data / prefix, images)
        common = loaders_on(finetune_data, prefix) + epochs_option(args.epochs) + [f'randomness.seed={seed}']
        run_dir = args.work_dir / f'{args.shots}shot-seed{seed}'
        finetuned = held_out_top1(
            FINETUNE,
            run_dir / 'finetune',
            [*common, f'model.backbone.init_cfg.checkpoint={checkpoint}', f'model.backbone.frozen_stages={frozen}'],
        )
        scratch = held_out_top1(SCRATCH, run_dir / 'scratch', common)
        runs.append(dict(seed=seed, finetune=finetuned, scratch=scratch))

    held_out = sum(len(indices) for indices in of_digits('val', NEW).values())
    results = dict(
        shots=args.shots,
        frozen_stages=frozen,
        held_out_images=held_out,
        pretrain_top1=pretrain_top1,
        runs=runs,
        **{method: summary(runs, method) for method in ('finetune', 'scratch')},
    )
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + '\n')
    print(f'the digits 5-9 from {args.shots} labelled images each, top-1 (%) on the {held_out} held-out images:')
    print('seed  fine-tuned  from scratch')
    for run in runs:
        print(f'{run["seed"]:<4}  {run["finetune"]:10.2f}  {run["scratch"]:12.2f}')
    for name in ('mean', 'std'):
        print(f'{name:<4}  {results["finetune"][name]:10.2f}  {results["scratch"][name]:12.2f}')
    print(f'results written to {out}')


if __name__ == '__main__':
    run_cli(main)
