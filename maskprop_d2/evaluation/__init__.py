"""YouTube-VIS evaluation: metrics, results files, the DatasetEvaluator and the CLI."""

from .evaluator import YTVISEvaluator
from .results_io import check_results, load_results, write_results
from .ytvis_eval import YTVISEvalResult, evaluate

__all__ = [
    "YTVISEvaluator",
    "YTVISEvalResult",
    "evaluate",
    "check_results",
    "load_results",
    "write_results",
]
