"""MaskProp video instance segmentation as a detectron2 extension.

Importing the package registers its components with detectron2: the ``MaskProp``
meta-architecture, ``MaskPropROIHeads``, the propagation head registry, and the built-in
YouTube-VIS / OVIS / synthetic dataset splits (lazily: nothing is read from disk).
"""

from . import _cli_warnings

# `python -m maskprop_d2.<module>` is an entry point: filter its known third-party warnings
# before detectron2 is imported (a library import filters nothing; see _cli_warnings).
if _cli_warnings.started_as_cli():
    _cli_warnings.quiet_known_warnings()

# Command-line programs that need neither torch nor detectron2: when the process was started as
# one of them, nothing is registered (the registrations below import torch and detectron2).
_LIGHT_CLIS = ("maskprop_d2.evaluation", "maskprop_d2.evaluation.__main__")

if _cli_warnings.module_run_as_main() not in _LIGHT_CLIS:
    from . import (  # noqa: E402
        data,  # noqa: F401  (registers the built-in dataset splits)
        modeling,  # noqa: F401  (registers MaskProp, MaskPropROIHeads, the propagation head)
    )
    from .config import add_maskprop_config, get_maskprop_cfg  # noqa: E402


def __getattr__(name):  # the light CLIs: the config helpers on first use
    if name in ("add_maskprop_config", "get_maskprop_cfg"):
        from . import config

        return getattr(config, name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))

__all__ = ["add_maskprop_config", "get_maskprop_cfg"]
__version__ = "0.1.0"
