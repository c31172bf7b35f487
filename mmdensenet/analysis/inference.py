"""Moved to :mod:`mmdensenet.apis.inference`; this alias keeps the old imports working."""

from ..apis.inference import LOADING_TRANSFORMS, ImageClassification, Prediction, draw_predictions

__all__ = ['LOADING_TRANSFORMS', 'ImageClassification', 'Prediction', 'draw_predictions']
