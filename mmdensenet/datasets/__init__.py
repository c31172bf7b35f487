"""Data pipeline steps of our own, registered in ``mmdensenet.registry.TRANSFORMS``."""

from .transforms import LoadImageFromFile, ToGrayscale

__all__ = ['LoadImageFromFile', 'ToGrayscale']
