"""YouTube-VIS results: RLE helpers, the results writer (results.json + .zip) and a validator.

Results format (``docs/formats.md``): a list of ``{"video_id", "category_id", "score",
"segmentations": [{"size": [h, w], "counts": str} | None, one per frame]}``. The zip holds
``results.json`` at its root (what CodaLab takes). No detectron2 dependency.
"""

import json
import math
import numbers
import os
import tempfile
import zipfile
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.file_io import atomic_write_bytes, publish_file
from ..utils.rle import encode_mask, rle_totals

__all__ = [
    "encode_mask",
    "encode_video_masks",
    "check_results",
    "write_results",
    "load_results",
    "load_json",
    "rle_totals",
]

# ---------------------------------------------------------------------------------- RLE helpers
def encode_video_masks(masks: Iterable[Optional[np.ndarray]]) -> List[Optional[Dict[str, Any]]]:
    """Per-frame binary masks (None = absent) -> the ``segmentations`` list of a result entry."""
    return [None if m is None else encode_mask(m) for m in masks]


def _size_problem(size, h: int, w: int) -> Optional[str]:
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)
    ):
        return "'size' must be [height, width], got {!r}".format(size)
    if (int(size[0]), int(size[1])) != (h, w):
        return "mask size {}x{} != video size {}x{}".format(size[0], size[1], h, w)
    return None


def segmentation_problems(
    segs: Sequence, h: int, w: int, allow_uncompressed: bool = False, allow_polygons: bool = False
) -> List[Tuple[int, str]]:
    """Problems of one entry's per-frame segmentations as (frame index, message).

    Accepts None (absent) and compressed RLE (str or bytes counts); uncompressed RLE (list counts)
    and polygons only when allowed. Compressed counts are decoded (vectorised) and must sum to h*w.
    """
    problems: List[Tuple[int, str]] = []
    compressed: List[Tuple[int, Any]] = []
    for f, seg in enumerate(segs):
        if seg is None:
            continue
        if isinstance(seg, list):
            if not allow_polygons:
                problems.append((f, "polygons are not allowed here (compressed RLE expected)"))
            elif not seg or not all(
                isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg
            ) or not all(
                isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
                for p in seg
                for x in p
            ):
                problems.append((f, "malformed polygon (lists of >= 3 x, y pairs expected)"))
            elif any(
                min(p[0::2]) < -w or max(p[0::2]) > 2 * w or min(p[1::2]) < -h
                or max(p[1::2]) > 2 * h
                for p in seg
            ):
                problems.append((f, "polygon coordinates far outside the frame"))
            continue
        if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
            problems.append((f, "segmentation must be null or an RLE {'size', 'counts'}"))
            continue
        p = _size_problem(seg["size"], h, w)
        if p:
            problems.append((f, p))
            continue
        c = seg["counts"]
        if isinstance(c, list):
            if not allow_uncompressed:
                problems.append(
                    (f, "uncompressed RLE (list counts); compressed str counts expected")
                )
                continue
            arr = np.asarray(c)
            if arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
                problems.append((f, "RLE counts must be non-negative ints"))
            elif int(arr.sum()) != h * w:
                problems.append((f, "RLE counts sum to {} != {}x{}".format(int(arr.sum()), h, w)))
        elif isinstance(c, (str, bytes)):
            compressed.append((f, c))
        else:
            problems.append((f, "RLE counts must be a string, got {}".format(type(c).__name__)))
    if compressed:
        ok, total = rle_totals([c for _, c in compressed])
        for (f, _), good, tot in zip(compressed, ok.tolist(), total.tolist(), strict=True):
            if not good:
                problems.append((f, "malformed compressed RLE counts"))
            elif tot != h * w:
                problems.append((f, "RLE covers {} pixels != {}x{}".format(tot, h, w)))
    problems.sort(key=lambda x: x[0])
    return problems


# ---------------------------------------------------------------------------------- validation
def _is_id(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _entry_problems(i: int, r: Any, videos: Dict, cats: set, allow_uncompressed: bool):
    """Yield the problems of results[i]."""
    where = "results[{}]".format(i)
    if not isinstance(r, dict):
        yield "{}: entry must be an object, got {}".format(where, type(r).__name__)
        return
    missing = [k for k in ("video_id", "category_id", "score", "segmentations") if k not in r]
    if missing:
        yield "{}: missing key(s) {}".format(where, ", ".join(missing))
        return
    vid = r["video_id"]
    where = "results[{}] (video_id={!r})".format(i, vid)
    if not _is_id(vid) or vid not in videos:
        yield "{}: unknown video_id {!r}".format(where, vid)
        return
    if not _is_id(r["category_id"]) or r["category_id"] not in cats:
        yield "{}: unknown category_id {!r}".format(where, r["category_id"])
    s = r["score"]
    if not isinstance(s, numbers.Real) or isinstance(s, bool) or not math.isfinite(s):
        yield "{}: score must be a finite number, got {!r}".format(where, s)
    v = videos[vid]
    segs = r["segmentations"]
    length = int(v["length"]) if "length" in v else len(v.get("file_names", []))
    if not isinstance(segs, list):
        yield "{}: 'segmentations' must be a list, got {}".format(where, type(segs).__name__)
        return
    if len(segs) != length:
        yield "{}: {} segmentations for a video of {} frames".format(where, len(segs), length)
        return
    h, w = int(v["height"]), int(v["width"])
    for f, msg in segmentation_problems(segs, h, w, allow_uncompressed=allow_uncompressed):
        yield "{} frame {}: {}".format(where, f, msg)


def check_results(
    gt: Dict[str, Any], results: Any, *, allow_uncompressed: bool = False, max_errors: int = 0
) -> List[str]:
    """Validate a results list against a GT dict (its "videos" and "categories"); no scoring.

    Checks: a list of dicts with video_id (known), category_id (known), score (finite number) and
    segmentations (a list with one entry per video frame; each null or a well-formed compressed RLE
    of the video's size). Returns the problems as messages naming the entry and video ([] = OK).
    ``max_errors`` > 0 stops after that many problems.
    """
    if not isinstance(results, list):
        return ["results must be a JSON list of entries, got {}".format(type(results).__name__)]
    videos = {v["id"]: v for v in gt.get("videos", [])}
    cats = {c["id"] for c in gt.get("categories", [])}
    errors: List[str] = []
    for i, r in enumerate(results):
        for msg in _entry_problems(i, r, videos, cats, allow_uncompressed):
            errors.append(msg)
            if 0 < max_errors <= len(errors):
                return errors
    return errors


# ---------------------------------------------------------------------------------- files
def write_results(results: List[Dict[str, Any]], output_dir: str) -> Tuple[str, str]:
    """Write ``output_dir/results.json`` and ``output_dir/results.zip`` (results.json at its root).

    Both files are written atomically (temporary file + rename). Returns their paths.
    """
    data = json.dumps(results, separators=(",", ":")).encode("utf-8")
    json_path = os.path.join(output_dir, "results.json")
    zip_path = os.path.join(output_dir, "results.zip")
    atomic_write_bytes(json_path, data)
    fd, tmp = tempfile.mkstemp(
        prefix=".tmp-", suffix=".zip", dir=os.path.dirname(os.path.abspath(zip_path))
    )
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("results.json", data)
        publish_file(tmp, zip_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
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
    return load_json(path)
