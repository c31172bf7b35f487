"""DenseNet for OpenMMLab 2.0.

Importing the package registers its models, so ``custom_imports=dict(imports=['mmdensenet'])``
is all a config needs.
"""

from . import models  # noqa: F401  (registers the models)
from .version import __version__

__all__ = ['__version__']
