"""MaskProp video instance segmentation as a detectron2 extension.

Importing the package imports nothing heavy, so that its torch-free command-line programs
(``python -m maskprop_d2.evaluation``, ``python -m maskprop_d2.data.synthetic``) stay light.
The components are registered with detectron2 by the modules that define them, when imported:
``maskprop_d2.modeling`` (the ``MaskProp`` and ``MaskTrackRCNN`` meta-architectures, the ROI
heads, the propagation and tracking heads) and ``maskprop_d2.data.builtin`` (the YouTube-VIS /
OVIS / synthetic dataset splits, lazily: nothing is read from disk). The config helpers below, the
first call of every entry point, import both::

    from maskprop_d2 import add_maskprop_config   # registers the components
    cfg = get_cfg(); add_maskprop_config(cfg)
"""

__all__ = ["add_maskprop_config", "get_maskprop_cfg", "register_components"]
__version__ = "0.1.0"


def register_components() -> None:
    """Register the model components and the built-in dataset splits with detectron2 (once;
    importing the modules is what registers them)."""
    from . import modeling  # noqa: F401
    from .data import builtin  # noqa: F401


def __getattr__(name):
    if name in ("add_maskprop_config", "get_maskprop_cfg"):
        register_components()
        from . import config

        value = getattr(config, name)
        globals()[name] = value
        return value
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
