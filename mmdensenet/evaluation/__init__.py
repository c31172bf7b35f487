"""Evaluation metrics of our own, registered in ``mmdensenet.registry.METRICS``."""

from .metrics import AUROC

__all__ = ['AUROC']
