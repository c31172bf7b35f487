from .densenet import DenseNet

__all__ = ['DenseNet']
