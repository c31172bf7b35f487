from .backbones import DenseNet

__all__ = ['DenseNet']
