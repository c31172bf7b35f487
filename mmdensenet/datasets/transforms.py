"""``type='mmdensenet.ToGrayscale'``: the one channel a grey config's net takes, however the image was read."""

import cv2
from mmcv.transforms import BaseTransform

from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class ToGrayscale(BaseTransform):
    """Turns a BGR image grey (OpenCV's weights: 0.299 R + 0.587 G + 0.114 B) and leaves a grey one alone.

    A grey config puts it after its loading step, so that an image read in colour reaches the net as
    one channel: mmpretrain's ``ImageClassificationInferencer`` drops the config's
    ``LoadImageFromFile(color_type='grayscale')`` and reads every file in colour.

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
