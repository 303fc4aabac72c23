"""YouTube-VIS evaluation: metrics, results files, the DatasetEvaluator and the CLI.

Importing this package imports numpy and pycocotools only: ``YTVISEvaluator`` (torch, detectron2)
is imported on first use, and the identity metrics (``trackeval``) by ``identity_metrics`` when
called.
"""

from .results_io import check_gt, check_results, load_results, write_results
from .ytvis_eval import YTVISEvalResult, evaluate

__all__ = [
    "YTVISEvaluator",
    "YTVISEvalResult",
    "evaluate",
    "identity_metrics",
    "check_gt",
    "check_results",
    "load_results",
    "write_results",
]

_LAZY = {
    "YTVISEvaluator": ".evaluator",
    "identity_metrics": ".identity",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
