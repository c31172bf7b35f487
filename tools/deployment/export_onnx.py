"""Export a classifier config (and checkpoint) to ONNX and check onnxruntime against PyTorch.

python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] OUT.onnx [--img-size H [W]] [--opset 17]

The ONNX model takes ``images``, a float batch of shape (N, C, H, W) normalised as the config's data
preprocessor does (mean and std, RGB), with a dynamic batch size, and returns ``logits`` of shape
(N, num_classes). C is what the net takes (3, or 1 for grey configs such as the digits); H and W
are the size of the config's test pipeline (224 for ImageNet, 32 for CIFAR and SVHN, 8 for the
digits) unless --img-size says otherwise, and at least the net's stride. Without a checkpoint the
weights are random (PyTorch's defaults).
The file is written only if onnxruntime's logits match PyTorch's to within --tolerance.
"""

import argparse
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.onnx.errors import OnnxExporterWarning

from mmdensenet.apis import init_model, input_shape, load_config
from mmdensenet.cli import ArgumentParser, run_cli
from mmdensenet.errors import ToolError, reraise_as_tool_error
from mmdensenet.outputs import atomic_output, check_output


class Logits(nn.Module):
    """An mmpretrain classifier as a plain function from images to class logits."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(images, mode='tensor')


def export(model: Logits, shape: tuple[int, int, int], opset: int, out_file: Path) -> None:
    """Exports ``model`` for (N, *shape) images; an opset the exporter does not support is its one-line error."""
    images = torch.randn(1, *shape)
    with warnings.catch_warnings():
        # The TorchScript-based exporter, deprecated but complete (torch.export's needs onnxscript). Its
        # warnings are about its own choices (onnxruntime's check below is what counts), but for the one
        # that says an opset is above its range, before it fails or writes other opsets' operators.
        warnings.simplefilter('ignore')
        warnings.simplefilter('error', OnnxExporterWarning)
        try:
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
        except Exception as exc:
            # Its first line: some of its errors go on with the TorchScript graph around the failure.
            reason = str(exc).partition('\n')[0].strip() or type(exc).__name__
            raise ToolError(f'ONNX export at --opset {opset} failed: {reason}') from exc


def max_difference(model: Logits, onnx_file: Path, shape: tuple[int, int, int], opset: int) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on random images.

    onnxruntime refuses the opsets below its range, which the exporter writes all the same.
    """
    import onnxruntime

    images = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with reraise_as_tool_error(f'onnxruntime cannot run the model exported at --opset {opset}'):
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: they come back as the exception
        session = onnxruntime.InferenceSession(str(onnx_file), options, providers=['CPUExecutionProvider'])
        (onnx_logits,) = session.run(['logits'], {'images': images.numpy()})
    with torch.no_grad():
        torch_logits = model(images).numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


def parse_args() -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a classifier config')
    parser.add_argument('files', nargs='+', metavar='[CHECKPOINT] OUT.onnx', help='optional weights, then the output')
    parser.add_argument(
        '--img-size', type=int, nargs='+', metavar='SIZE', help="H W, or one size; default: the config's test size"
    )
    parser.add_argument(
        '--opset', type=int, default=17, help="ONNX opset version, one torch's exporter and onnxruntime support"
    )
    parser.add_argument('--tolerance', type=float, default=1e-4, help='largest difference accepted')
    args = parser.parse_args()
    if len(args.files) > 2:
        parser.error('expected CONFIG [CHECKPOINT] OUT.onnx')
    args.checkpoint, args.out = (None, *args.files) if len(args.files) == 1 else args.files
    args.out = Path(args.out)
    if args.out.suffix != '.onnx':
        parser.error(f'the output must be a .onnx file, got {args.out}')
    if args.img_size is not None and (len(args.img_size) > 2 or min(args.img_size) < 1):
        parser.error(f'--img-size takes one or two positive sizes, got {args.img_size}')
    if args.opset < 1:
        parser.error(f'--opset must be a positive version, got {args.opset}')
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        parser.error(f'--tolerance must be a finite number, 0 or more, got {args.tolerance:g}')
    return args


def main() -> None:
    args = parse_args()
    check_output(args.out, args.config, args.checkpoint)
    cfg = load_config(args.config)
    model = Logits(init_model(cfg, args.checkpoint)).eval()
    shape = input_shape(cfg, model.classifier, args.img_size, '--img-size')
    with atomic_output(args.out) as tmp:
        export(model, shape, args.opset, tmp)
        difference = max_difference(model, tmp, shape, args.opset)
        if not difference <= args.tolerance:
            raise ToolError(f'onnxruntime differs from PyTorch by {difference:.2e} (> {args.tolerance:g}), not written')
    weights = args.checkpoint or 'random weights'
    print(
        f'{args.out} written ({weights}; images (N, {", ".join(map(str, shape))})); '
        f'onnxruntime matches PyTorch to {difference:.1e} (max abs difference)'
    )


if __name__ == '__main__':
    run_cli(main)
