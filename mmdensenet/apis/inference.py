"""Classify one image with a config and a checkpoint, and draw the result.

The image goes through the config's test pipeline and the model's data preprocessor, as in
``tools/test.py``. Class names come from the checkpoint's ``meta.dataset_meta`` (what
mmengine's Runner saves), else from the config's test dataset (its ``classes``/``metainfo``
or the dataset class's own), else they are the class indices.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np
import torch
from matplotlib.figure import Figure
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DATASETS, DefaultScope

from ..errors import ToolError, reraise_as_tool_error
from ..inputs import check_image_pixels, require_file
from ..outputs import atomic_output, require_png
from .config import load_config
from .model import DEFAULT_SCOPE, init_model, net_stride

LOADING_TRANSFORMS = ('LoadImageFromFile', 'mmpretrain.LoadImageFromFile', 'mmdensenet.LoadImageFromFile')


@dataclass(frozen=True)
class Prediction:
    """One class of a top-k prediction."""

    label: int
    name: str
    score: float  # probability in [0, 1]


class ImageClassification:
    """A classifier from :func:`~mmdensenet.apis.model.init_model`, fed through its config's test pipeline.

    Args:
        config: Config file of the model.
        checkpoint: Checkpoint file or URL, read with ``weights_only=True``; it must fit the model.
        device: Where the model runs.
    """

    def __init__(self, config: Union[str, Path], checkpoint: Union[str, Path], device: str = 'cpu') -> None:
        self.cfg = load_config(config)
        self.model = init_model(self.cfg, checkpoint, device)
        self.load_image, self.pipeline = build_test_pipeline(self.cfg)

    def read(self, path: Union[str, Path]) -> np.ndarray:
        """Reads an image file the way the config's test pipeline does (BGR, or grey for ``color_type='grayscale'``)."""
        path = require_file(path, 'image file')
        check_image_pixels(path)
        with reraise_as_tool_error(f'cannot decode image {path}'), _quiet_opencv():
            loaded = self.load_image(dict(img_path=str(path)))
        if loaded is None:
            raise ToolError(f'cannot decode image {path}')
        return loaded['img']

    def predict(self, image: Union[np.ndarray, str, Path], topk: int = 5) -> list[Prediction]:
        """The ``topk`` most likely classes of an image file, or of an image as :meth:`read` gives it."""
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ToolError(f'topk must be a positive whole number, got {topk!r}')
        name = 'the image'
        if not isinstance(image, np.ndarray):
            name, image = str(image), self.read(image)
        elif not image.size or image.ndim not in (2, 3) or image.shape[2:] not in ((), (1,), (3,)):
            raise ToolError(
                f'the image must be an array of shape (H, W) or (H, W, 3), as read gives it; got {image.shape}'
            )
        data = self.pipeline(dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2]))
        try:
            with torch.no_grad():
                scores = self.model.test_step(pseudo_collate([data]))[0].pred_score.cpu()
        except RuntimeError as error:
            too_small = self._too_small(data['inputs'], name)
            if too_small is None:
                raise
            raise too_small from error
        names = self.class_names(len(scores))
        values, labels = scores.topk(min(topk, len(scores)))
        return [Prediction(int(i), names[i], float(v)) for v, i in zip(values, labels)]

    def _too_small(self, inputs: torch.Tensor, name: str) -> Optional[ToolError]:
        """Why the model failed on ``inputs``, if they are smaller than its backbone's largest stride."""
        stride = net_stride(self.model)
        height, width = inputs.shape[-2:]
        if min(height, width) >= stride:
            return None
        return ToolError(
            f'{name} is {width}x{height} pixels after the test pipeline, too small for the model, which '
            f'downsamples it {stride} times; give an image of at least {stride}x{stride} pixels'
        )

    def class_names(self, num_classes: int) -> list[str]:
        """Names of the model's classes, from the checkpoint or the config; indices if neither has them."""
        for names in (self.model.dataset_meta.get('classes'), _config_classes(self.cfg)):
            if names is not None and len(names) == num_classes:
                return [str(name) for name in names]
        return [str(i) for i in range(num_classes)]


def _test_dataset_cfg(cfg: Config) -> dict:
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    return dataset.get('dataset', dataset)  # unwrap a dataset wrapper such as RepeatDataset


def _config_classes(cfg: Config) -> Optional[Sequence]:
    dataset = _test_dataset_cfg(cfg)
    names = dataset.get('classes') or (dataset.get('metainfo') or {}).get('classes')
    if names is None and isinstance(dataset.get('type'), str):
        with DATASETS.switch_scope_and_registry(cfg.get('default_scope', DEFAULT_SCOPE)) as registry:
            dataset_class = registry.get(dataset['type'])
        names = getattr(dataset_class, 'METAINFO', {}).get('classes')
    return names


def build_test_pipeline(cfg: Config) -> tuple[Compose, Compose]:
    """The config's test pipeline as its loading step (mmpretrain's default if it has none) and the rest."""
    steps = cfg.get('test_pipeline') or _test_dataset_cfg(cfg).get('pipeline')
    if not steps:
        raise ToolError('the config has no test_pipeline nor test_dataloader.dataset.pipeline')
    loading = [step for step in steps if step.get('type') in LOADING_TRANSFORMS] or [dict(type='LoadImageFromFile')]
    rest = [step for step in steps if step.get('type') not in LOADING_TRANSFORMS]
    scope = cfg.get('default_scope', DEFAULT_SCOPE)
    with reraise_as_tool_error("cannot build the config's test pipeline"), DefaultScope.overwrite_default_scope(scope):
        return Compose(loading[:1]), Compose(rest)


# OpenCV's LOG_LEVEL_ERROR, the same number in 4.x and 5.
OPENCV_LOG_LEVEL_ERROR = 2


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Keeps OpenCV from logging a warning line of its own for a broken file; the error says it instead."""
    logging = getattr(cv2.utils, 'logging', cv2)  # OpenCV 5 moved these from the top level (4.x)
    level = logging.getLogLevel()
    logging.setLogLevel(OPENCV_LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def draw_predictions(image: np.ndarray, predictions: Sequence[Prediction], out_file: Union[str, Path]) -> Path:
    """Save a PNG of the BGR (or grey) ``image`` under its top-1 class, beside a bar chart of all ``predictions``."""
    out_file = require_png(Path(out_file))
    figure = Figure(figsize=(10, 4.5), layout='constrained')
    image_axes, bar_axes = figure.subplots(1, 2, width_ratios=(1, 1.2))
    if image.ndim == 2:
        image_axes.imshow(image, cmap='gray', vmin=0, vmax=255)
    else:
        image_axes.imshow(image[..., ::-1])
    image_axes.set_axis_off()
    best = predictions[0]
    image_axes.set_title(f'{best.name} ({best.score:.1%})')
    labels = [f'{p.name} [{p.label}]' for p in predictions]
    bars = bar_axes.barh(labels[::-1], [p.score * 100 for p in predictions][::-1], color='tab:blue')
    bar_axes.bar_label(bars, fmt='%.1f%%', padding=3)
    bar_axes.set_xlim(0, 115)
    bar_axes.set_xlabel('probability (%)')
    bar_axes.set_title(f'top-{len(predictions)}')
    with atomic_output(out_file) as tmp:
        figure.savefig(tmp, format='png', dpi=100)
    return out_file
