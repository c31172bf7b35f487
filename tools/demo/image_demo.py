"""Classify an image: print the top-5 classes and save a picture of the prediction.

python tools/demo/image_demo.py CONFIG CHECKPOINT IMAGE [--out FILE.png] [--device cpu]
"""

import argparse
from pathlib import Path

from mmdensenet.apis import ImageClassification, draw_predictions
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.outputs import check_output, require_png


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file or URL (loaded weights-only)')
    parser.add_argument('image', type=Path, help='image file')
    parser.add_argument('--out', type=Path, help='the PNG to write (default: <image name>_pred.png here)')
    parser.add_argument('--device', default='cpu', help="device to run on, e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--topk', type=int, default=5, help='how many classes to show')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = require_png(args.out or Path(f'{args.image.stem}_pred.png'))
    check_output(out, args.image, args.config, args.checkpoint)
    classifier = ImageClassification(args.config, args.checkpoint, args.device)
    predictions = classifier.predict(args.image, args.topk)
    print(f'top-{len(predictions)} for {args.image}:')
    for rank, prediction in enumerate(predictions, 1):
        print(f'{rank}. {prediction.name} (class {prediction.label}): {prediction.score:.2%}')
    print(f'prediction drawn to {draw_predictions(classifier.read(args.image), predictions, out)}')


if __name__ == '__main__':
    run_cli(main)
