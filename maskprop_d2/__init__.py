"""MaskProp video instance segmentation as a detectron2 extension."""
from .config import add_maskprop_config

__all__ = ["add_maskprop_config"]
__version__ = "0.1.0"
