"""What the tools run: configs, the models built from them, training and testing, image inference."""

from .arguments import parse_runner_args
from .config import load_config
from .distributed import prepare_distributed
from .inference import ImageClassification, Prediction, draw_predictions
from .input_shape import input_shape
from .model import build_model, init_model
from .runs import evaluate, train

__all__ = [
    'ImageClassification',
    'Prediction',
    'build_model',
    'draw_predictions',
    'evaluate',
    'init_model',
    'input_shape',
    'load_config',
    'parse_runner_args',
    'prepare_distributed',
    'train',
]
