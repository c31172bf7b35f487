"""What the tools run: configs, the models built from them, training and testing, image inference."""

from .config import load_config
from .distributed import prepare_distributed
from .evaluation import evaluate
from .inference import ImageClassification, Prediction, draw_predictions
from .input_shape import input_shape
from .model import build_model, init_model
from .training import train

__all__ = [
    'ImageClassification',
    'Prediction',
    'build_model',
    'draw_predictions',
    'evaluate',
    'init_model',
    'input_shape',
    'load_config',
    'prepare_distributed',
    'train',
]
