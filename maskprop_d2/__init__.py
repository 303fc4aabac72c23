"""MaskProp video instance segmentation as a detectron2 extension.

Importing the package registers its components with detectron2: the ``MaskProp``
meta-architecture, ``MaskPropROIHeads``, the propagation head registry, and the built-in
YouTube-VIS / OVIS / synthetic dataset splits (lazily: nothing is read from disk).
"""

from . import (
    data,  # noqa: F401  (registers the built-in dataset splits)
    modeling,  # noqa: F401  (registers MaskProp, MaskPropROIHeads, the propagation head)
)
from .config import add_maskprop_config, get_maskprop_cfg

__all__ = ["add_maskprop_config", "get_maskprop_cfg"]
__version__ = "0.1.0"
