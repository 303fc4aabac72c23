"""MaskProp video instance segmentation as a detectron2 extension."""
from . import data  # noqa: F401  (registers the built-in dataset splits)
from .config import add_maskprop_config

__all__ = ["add_maskprop_config"]
__version__ = "0.1.0"
