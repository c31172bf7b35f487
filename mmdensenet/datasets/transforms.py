"""Data pipeline steps of our own: safe image loading, and grey input for grey configs."""

from typing import Optional

import cv2
from mmcv.transforms import BaseTransform
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile

from ..inputs import check_image_pixels
from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments) that first refuses an image whose header claims too many
    pixels (:func:`~mmdensenet.inputs.check_image_pixels`), naming the file, before decoding it.

    An image given as pixels (``img`` without ``img_path``) passes through: mmpretrain's inferencers drop only
    the steps named ``LoadImageFromFile`` from a pipeline and feed it the images they read themselves.
    """

    def transform(self, results: dict) -> Optional[dict]:
        if 'img_path' not in results and 'img' in results:
            return results
        check_image_pixels(results['img_path'])
        return super().transform(results)


@TRANSFORMS.register_module()
class ToGrayscale(BaseTransform):
    """Turns a BGR image grey (OpenCV's weights: 0.299 R + 0.587 G + 0.114 B) and leaves a grey one alone.

    A grey config puts it after its loading step, so that an image read in colour reaches the net as
    one channel: mmpretrain's ``ImageClassificationInferencer`` drops the config's loading step and
    reads every file in colour.

    Required keys: ``img`` (H x W, H x W x 1 or H x W x 3 BGR). Modified keys: ``img`` (H x W
    when it was BGR, else unchanged).
    """

    def transform(self, results: dict) -> dict:
        image = results['img']
        if image.ndim == 3 and image.shape[2] == 3:
            results['img'] = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)):
            raise ValueError(f'ToGrayscale takes a grey or BGR image, got one of shape {tuple(image.shape)}')
        return results
