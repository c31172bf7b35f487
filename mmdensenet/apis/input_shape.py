"""The images a config's model takes: its channels, its test pipeline's size and the net's stride.

One answer for every tool that feeds a model made-up images (``get_flops``, ``export_onnx``).
"""

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch.nn as nn
from mmengine.config import Config

from ..errors import ToolError, reraise_as_tool_error
from .inference import build_test_pipeline
from .model import net_stride

# Two blank images of different shapes: a pipeline that fixes the size gives both the same one.
_PROBES = ((480, 640), (640, 480))


def pipeline_image_size(cfg: Config) -> Optional[tuple[int, int]]:
    """(height, width) of the images the config's test pipeline gives; None where it keeps the loaded size.

    Found by running the pipeline after its loading step (as inference does) on blank colour
    images, so every resize and crop counts, whichever transform and convention it uses.
    """
    _, pipeline = build_test_pipeline(cfg)
    sizes = set()
    for height, width in _PROBES:
        with reraise_as_tool_error(f'cannot run the test pipeline of {cfg.filename} on a blank image'):
            packed = pipeline(dict(img=np.zeros((height, width, 3), np.uint8), img_shape=(height, width)))
            sizes.add(tuple(packed['inputs'].shape[-2:]))
    return sizes.pop() if len(sizes) == 1 else None


def input_shape(
    cfg: Config, model: nn.Module, size: Optional[Sequence[int]] = None, option: str = 'size'
) -> tuple[int, int, int]:
    """(channels, height, width) of the images that ``model``, built from ``cfg``, takes.

    Args:
        cfg: The model's config.
        model: The model.
        size: Height and width (or one size for both); by default the config's test pipeline's.
        option: The command-line option that gives ``size``, named in the errors.

    Returns:
        The channels of the model's first convolution (1 for grey configs such as the digits), and
        the size, at least the net's :func:`net_stride` in each dimension.
    """
    conv = next((module for module in model.modules() if isinstance(module, nn.Conv2d)), None)
    if conv is None:
        raise ToolError(f'the model of {cfg.filename} has no convolution to say how many channels it takes')
    if size:
        height, width = (size[0], size[0]) if len(size) == 1 else size
    else:
        try:
            pipeline_size = pipeline_image_size(cfg)
        except ToolError as exc:
            raise ToolError(f'{exc}; give {option}') from exc
        if pipeline_size is None:
            raise ToolError(f'the test pipeline of {cfg.filename} keeps each image at its own size; give {option}')
        height, width = pipeline_size
    least = net_stride(model)
    if min(height, width) < least:
        raise ToolError(
            f'{option} {height}x{width} is smaller than the net, whose stride is {least} '
            "(its backbone's largest feature_info reduction)"
        )
    return conv.in_channels, height, width
