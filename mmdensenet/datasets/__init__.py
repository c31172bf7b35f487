from .transforms import LoadImageFromFile

__all__ = ['LoadImageFromFile']
