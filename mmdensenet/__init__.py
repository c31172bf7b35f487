"""DenseNet for OpenMMLab 2.0.

Importing the package registers its models, hooks and transforms, so ``custom_imports=dict(imports=['mmdensenet'])``
is all a config needs.
"""

# models, engine and datasets register the models, hooks and transforms; weights lets torch's
# weights-only loading read mmengine's checkpoints.
from . import datasets, engine, models, weights  # noqa: F401
from .version import __version__

__all__ = ['__version__']
