"""DenseNet for OpenMMLab 2.0.

Importing the package registers its models, data pipeline steps, hooks and metrics, so
``custom_imports=dict(imports=['mmdensenet'])`` is all a config needs.
"""

# models, datasets, engine and evaluation register the models, pipeline steps, hooks and metrics;
# weights lets torch's weights-only loading read mmengine's checkpoints.
from . import datasets, engine, evaluation, models, weights  # noqa: F401
from .version import __version__

__all__ = ['__version__']
