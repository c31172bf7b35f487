"""Analysis tools: FLOPs and parameter counts, training curves and image inference."""

from .curves import plot_training_curves

__all__ = ['plot_training_curves']
