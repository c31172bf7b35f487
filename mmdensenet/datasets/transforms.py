"""Data pipeline steps: loading an image file with its size checked before it is decoded."""

from typing import Optional

from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile

from ..inputs import check_image_pixels
from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments) that first refuses an image whose header claims too many
    pixels (:func:`~mmdensenet.inputs.check_image_pixels`), naming the file, before decoding it."""

    def transform(self, results: dict) -> Optional[dict]:
        check_image_pixels(results['img_path'])
        return super().transform(results)
