"""YouTube-VIS results: RLE helpers, the results writer (results.json + .zip) and a validator.

Results format (``docs/formats.md``): a list of ``{"video_id", "category_id", "score",
"segmentations": [{"size": [h, w], "counts": str} | None, one per frame]}``. The zip holds
``results.json`` at its root (what CodaLab takes). No detectron2 dependency.
"""

import json
import os
import zipfile
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from ..utils.file_io import atomic_open, atomic_write_bytes
from ..utils.rle import encode_mask, rle_totals
from .parse import parse

__all__ = [
    "encode_mask",
    "encode_video_masks",
    "check_results",
    "check_gt",
    "write_results",
    "load_results",
    "load_json",
    "rle_totals",
]

# ---------------------------------------------------------------------------------- RLE helpers
def encode_video_masks(masks: Iterable[Optional[np.ndarray]]) -> List[Optional[Dict[str, Any]]]:
    """Per-frame binary masks (None = absent) -> the ``segmentations`` list of a result entry."""
    return [None if m is None else encode_mask(m) for m in masks]


# ---------------------------------------------------------------------------------- validation
def check_gt(gt: Any, max_errors: int = 0) -> List[str]:
    """Validate a YouTube-VIS GT dict: videos, categories and (when present) annotations with
    their segmentations, exactly as scoring does. Returns the problems ([] = OK)."""
    gt_probs, _, _ = parse(gt, None, need_annotations=False, max_problems=max_errors)
    return ["ground truth: " + p for p in gt_probs]


def check_results(gt: Dict[str, Any], results: Any, *, max_errors: int = 0) -> List[str]:
    """Validate a results list against a GT dict; no scoring.

    The GT is validated first, as scoring does (``check_gt``; a GT without annotations is fine);
    its problems are returned, prefixed ``ground truth:``, and then the results are not looked at.
    Results: a list of objects with video_id (known), category_id (known), score (finite number)
    and segmentations (a list with one entry per video frame; each null or an RLE of the video's
    size, compressed (str/bytes counts) or uncompressed (list counts)): exactly what scoring
    accepts. Returns the problems as messages naming the entry and video ([] = OK).
    ``max_errors`` > 0 stops after that many problems.
    """
    gt_probs, res_probs, _ = parse(gt, results, need_annotations=False, max_problems=max_errors)
    return ["ground truth: " + p for p in gt_probs] + res_probs


# ---------------------------------------------------------------------------------- files
def write_results(results: List[Dict[str, Any]], output_dir: str) -> Tuple[str, str]:
    """Write ``output_dir/results.json`` and ``output_dir/results.zip`` (results.json at its root).

    Both files are written atomically (temporary file + rename). Returns their paths.
    """
    data = json.dumps(results, separators=(",", ":")).encode("utf-8")
    json_path = os.path.join(output_dir, "results.json")
    zip_path = os.path.join(output_dir, "results.zip")
    atomic_write_bytes(json_path, data)
    with atomic_open(zip_path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("results.json", data)
    return json_path, zip_path


def load_json(path: str) -> Any:
    """Read a JSON file, with a clear error naming the file."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except OSError as e:
        raise ValueError("cannot read {}: {}".format(path, e)) from e
    except ValueError as e:
        raise ValueError("{} is not valid JSON: {}".format(path, e)) from e
    except RecursionError:
        raise ValueError("{} is not valid JSON: nested too deeply".format(path)) from None


def load_results(path: str) -> Any:
    """Read results from a results.json, or from the results.json at the root of a results.zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if "results.json" not in z.namelist():
                raise ValueError("{} has no results.json at its root".format(path))
            try:
                return json.loads(z.read("results.json"))
            except ValueError as e:
                raise ValueError("results.json in {} is not valid JSON: {}".format(path, e)) from e
            except RecursionError:
                raise ValueError(
                    "results.json in {} is not valid JSON: nested too deeply".format(path)
                ) from None
    return load_json(path)
