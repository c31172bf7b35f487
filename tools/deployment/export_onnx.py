"""Export a classifier config (and checkpoint) to ONNX and check onnxruntime against PyTorch.

python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] OUT.onnx [--img-size 224] [--opset 17]

The ONNX model takes ``images``, a float batch of shape (N, C, H, W) (C is 3, or 1 for grey
configs such as the digits) normalised as the config's data preprocessor does (mean and std, RGB),
with a dynamic batch size, and returns ``logits`` of shape (N, num_classes). Without a
checkpoint the weights are random (PyTorch's defaults).
The file is written only if onnxruntime's logits match PyTorch's to within --tolerance.
"""

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.onnx._constants import ONNX_MIN_OPSET as MIN_OPSET
from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as MAX_OPSET

from mmdensenet.apis import init_model
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError, reraise_as_tool_error
from mmdensenet.outputs import atomic_output, check_output


class Logits(nn.Module):
    """An mmpretrain classifier as a plain function from images to class logits."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        # What the first convolution takes: 3 for colour configs, 1 for grey ones such as the digits.
        self.in_channels = next(m for m in classifier.modules() if isinstance(m, nn.Conv2d)).in_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(images, mode='tensor')


def export(model: Logits, img_size: int, opset: int, out_file: Path) -> None:
    images = torch.randn(1, model.in_channels, img_size, img_size)
    with warnings.catch_warnings():
        # The TorchScript-based exporter, deprecated but complete; torch.export's needs onnxscript.
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(
            model,
            (images,),
            str(out_file),
            dynamo=False,
            input_names=['images'],
            output_names=['logits'],
            dynamic_axes={'images': {0: 'batch'}, 'logits': {0: 'batch'}},
            opset_version=opset,
        )


def max_difference(model: Logits, onnx_file: Path, img_size: int) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on random images."""
    import onnxruntime

    images = torch.randn(2, model.in_channels, img_size, img_size, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(onnx_file), providers=['CPUExecutionProvider'])
    (onnx_logits,) = session.run(['logits'], {'images': images.numpy()})
    with torch.no_grad():
        torch_logits = model(images).numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a classifier config')
    parser.add_argument('files', nargs='+', metavar='[CHECKPOINT] OUT.onnx', help='optional weights, then the output')
    parser.add_argument('--img-size', type=int, default=224, help='height and width of the images')
    parser.add_argument('--opset', type=int, default=17, help=f'ONNX opset version, {MIN_OPSET} to {MAX_OPSET}')
    parser.add_argument('--tolerance', type=float, default=1e-4, help='largest difference accepted')
    args = parser.parse_args()
    if len(args.files) > 2:
        parser.error('expected CONFIG [CHECKPOINT] OUT.onnx')
    args.checkpoint, args.out = (None, *args.files) if len(args.files) == 1 else args.files
    args.out = Path(args.out)
    if args.out.suffix != '.onnx':
        parser.error(f'the output must be a .onnx file, got {args.out}')
    if args.img_size < 32:
        parser.error('--img-size must be at least 32')
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        parser.error(f'--opset must be from {MIN_OPSET} to {MAX_OPSET} (the TorchScript exporter), got {args.opset}')
    return args


def main() -> None:
    args = parse_args()
    check_output(args.out, args.config, args.checkpoint)
    model = Logits(init_model(args.config, args.checkpoint)).eval()
    with atomic_output(args.out) as tmp:
        with reraise_as_tool_error('ONNX export failed'):
            export(model, args.img_size, args.opset, tmp)
        difference = max_difference(model, tmp, args.img_size)
        if not difference <= args.tolerance:
            raise ToolError(f'onnxruntime differs from PyTorch by {difference:.2e} (> {args.tolerance:g}), not written')
    weights = args.checkpoint or 'random weights'
    print(f'{args.out} written ({weights}); onnxruntime matches PyTorch to {difference:.1e} (max abs difference)')


if __name__ == '__main__':
    run_cli(main)
