"""Data transforms of our own, registered in ``mmdensenet.registry.TRANSFORMS``."""

from .transforms import ToGrayscale

__all__ = ['ToGrayscale']
