"""Plot a training run's loss and accuracy curves to a PNG.

python tools/analysis_tools/plot_curves.py WORK_DIR_OR_JSON --out curves.png
"""

from pathlib import Path

from mmdensenet.analysis.curves import plot_training_curves
from mmdensenet.cli import ArgumentParser, run_cli


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('log', help="a work_dir, a run's vis_data folder, or its scalars.json / <timestamp>.json")
    parser.add_argument('--out', type=Path, default=Path('curves.png'), help='the PNG to write')
    args = parser.parse_args()
    out_file = plot_training_curves(args.log, args.out)
    print(f'curves written to {out_file}')


if __name__ == '__main__':
    run_cli(main)
