"""The field rules of a YouTube-VIS JSON, shared by the dataset loader (:mod:`..data.ytvis`) and
the evaluator (:mod:`..evaluation.parse`), so that a file the one accepts the other accepts too.

Every function checks one object or field and returns its problem(s) as text without a location
(``'height' must be an integer in 1..16384, got '480'``); the caller puts the file, the video /
annotation / category, the frame in front. Ids are integers; a video's ``length`` may be left out
when ``file_names`` gives it. The counts of compressed RLE strings are checked in bulk by the
callers (:mod:`.rle`); their messages are here too.

Python and numpy only, so that the evaluator imports it without torch.
"""
import math
import numbers
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

__all__ = [
    "MAX_SIDE",
    "MAX_LENGTH",
    "MALFORMED_COUNTS",
    "is_int",
    "is_number",
    "object_problem",
    "id_problem",
    "video_problems",
    "video_length",
    "category_problems",
    "annotation_problems",
    "frames_problem",
    "segmentation_problem",
    "rle_size_problem",
    "polygon_problem",
    "count_list_problem",
    "rle_total_problem",
]

MAX_SIDE = 2**14  # largest video height / width accepted (a mask is height * width bytes)
MAX_LENGTH = 2**20  # largest video length accepted
MALFORMED_COUNTS = "malformed compressed RLE counts"


def is_int(x: Any) -> bool:
    """An integer, not a bool."""
    return type(x) is int or (isinstance(x, numbers.Integral) and not isinstance(x, bool))


def is_number(x: Any) -> bool:
    """A finite real number (not bool) that a float can hold (a 400-digit int is not)."""
    try:
        if type(x) is float or type(x) is int:
            return math.isfinite(x)
        return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
    except OverflowError:
        return False


def _all_strings(values: list) -> bool:
    return set(map(type, values)) <= {str} or all(isinstance(s, str) for s in values)


def _numbers_or_nulls(values: list) -> bool:
    """Every value None or a finite number (``is_number``)."""
    if set(map(type, values)) <= {float, int, type(None)}:  # the usual case, at C speed
        try:
            if math.isfinite(sum(a for a in values if a is not None)):
                return True
        except OverflowError:  # huge ints: the slow check decides
            pass
    return all(a is None or is_number(a) for a in values)


# ----------------------------------------------------------------------------- objects
def object_problem(x: Any) -> Optional[str]:
    """Why ``x`` (an element of ``videos``, ``categories`` or ``annotations``) is not an object."""
    return None if isinstance(x, dict) else "must be an object, got {}".format(type(x).__name__)


def id_problem(d: Dict[str, Any]) -> Optional[str]:
    """Why the ``id`` of an object is missing or not an integer, or None."""
    if "id" not in d:
        return "missing 'id'"
    if not is_int(d["id"]):
        return "'id' must be an integer, got {!r}".format(d["id"])
    return None


def video_problems(v: Dict[str, Any]) -> List[str]:
    """The problems of a video's ``height``, ``width``, ``length`` and ``file_names``."""
    out = []
    for k in ("height", "width"):
        if k not in v:
            out.append("missing '{}'".format(k))
        elif not (is_int(v[k]) and 1 <= v[k] <= MAX_SIDE):
            out.append("'{}' must be an integer in 1..{}, got {!r}".format(k, MAX_SIDE, v[k]))
    fn = v.get("file_names")
    if "file_names" in v and not (isinstance(fn, list) and _all_strings(fn)):
        out.append("'file_names' must be a list of strings")
        fn = None
    if "length" in v:
        n = v["length"]
        if not (is_int(n) and 1 <= n <= MAX_LENGTH):
            out.append("'length' must be an integer in 1..{}, got {!r}".format(MAX_LENGTH, n))
        elif isinstance(fn, list) and len(fn) != n:
            out.append("'length' {} != {} 'file_names'".format(n, len(fn)))
    elif fn is None:
        if "file_names" not in v:
            out.append("missing 'length' (and no 'file_names')")
    elif not fn:
        out.append("no 'length' and an empty 'file_names'")
    return out


def video_length(v: Dict[str, Any]) -> int:
    """Frames of a (valid) video: its ``length``, else the number of its ``file_names``."""
    return v["length"] if "length" in v else len(v["file_names"])


def category_problems(c: Dict[str, Any]) -> List[str]:
    """The problems of a category's fields other than its id (``name``, optional, a string)."""
    if "name" in c and not isinstance(c["name"], str):
        return ["'name' must be a string"]
    return []


def annotation_problems(
    ann: Dict[str, Any], videos: Mapping[Any, Dict[str, Any]], categories: Any
) -> List[str]:
    """The problems of an annotation's fields other than its id: ``video_id`` and
    ``category_id`` known (keys of ``videos`` {id: video dict}, members of ``categories``),
    ``iscrowd``, ``segmentations`` a list, ``areas``, and ``height`` / ``width`` (optional)
    equal to the video's. The per-frame list lengths are :func:`frames_problem`'s."""
    out = []
    vid, cat = ann.get("video_id"), ann.get("category_id")
    if "video_id" not in ann:
        out.append("missing 'video_id'")
    elif not is_int(vid) or vid not in videos:
        out.append("unknown video_id {!r}".format(vid))
    if "category_id" not in ann:
        out.append("missing 'category_id'")
    elif not is_int(cat) or cat not in categories:
        out.append("unknown category_id {!r}".format(cat))
    if "iscrowd" in ann and not (is_int(ann["iscrowd"]) and ann["iscrowd"] in (0, 1)):
        out.append("'iscrowd' must be 0 or 1, got {!r}".format(ann["iscrowd"]))
    if "segmentations" not in ann:
        out.append("missing 'segmentations'")
    elif not isinstance(ann["segmentations"], list):
        out.append("'segmentations' must be a list, got {}".format(
            type(ann["segmentations"]).__name__))  # fmt: skip
    areas = ann.get("areas")
    if areas is not None and not (isinstance(areas, list) and _numbers_or_nulls(areas)):
        out.append("'areas' must be a list of numbers or nulls")
    for k in ("height", "width"):
        if k in ann and is_int(vid) and vid in videos and ann[k] != videos[vid].get(k):
            out.append("'{}' {!r} != the video's {!r}".format(k, ann[k], videos[vid].get(k)))
    return out


def frames_problem(field: str, values: list, length: int) -> Optional[str]:
    """Why a per-frame list (``segmentations``, ``bboxes``, ``areas``) does not have one entry
    per frame of a video of ``length`` frames, or None."""
    if len(values) == length:
        return None
    return "{} {} for a video of {} frames".format(len(values), field, length)


# ----------------------------------------------------------------------------- segmentations
def segmentation_problem(seg: Any, h: int, w: int, allow_polygons: bool = True) -> Optional[str]:
    """Why one frame's segmentation (not null) is not an RLE ``{'size', 'counts'}`` of an
    ``h`` x ``w`` frame (counts a string or a list) or, with ``allow_polygons``, polygons inside
    about the frame; or None. The counts' values are checked apart (:func:`count_list_problem`,
    :func:`rle_total_problem`)."""
    if type(seg) is dict:
        if "size" not in seg or "counts" not in seg:
            return "segmentation must be null or an RLE {'size', 'counts'}"
        size, c = seg["size"], seg["counts"]
        bad = rle_size_problem(size, h, w)
        if bad:
            return bad
        if type(c) is str or isinstance(c, (bytes, bytearray)) or type(c) is list:
            return None
        return "RLE counts must be a string or a list of ints, got {}".format(type(c).__name__)
    if isinstance(seg, list):
        if not allow_polygons:
            return "polygons are not allowed here (RLE expected)"
        return polygon_problem(seg, h, w)
    if isinstance(seg, dict):  # a dict subclass
        return "segmentation must be a plain JSON object"
    return "segmentation must be null or an RLE {'size', 'counts'}"


def rle_size_problem(size: Any, h: int, w: int) -> Optional[str]:
    """Why an RLE's ``size`` is not ``[h, w]``, or None."""
    if type(size) is list and size == [h, w] and type(size[0]) is int and type(size[1]) is int:
        return None  # the usual case
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(is_int(s) for s in size):
        return "'size' must be [height, width], got {!r}".format(size)
    if (int(size[0]), int(size[1])) != (h, w):
        return "mask size {}x{} != video size {}x{}".format(size[0], size[1], h, w)
    return None


def polygon_problem(seg: list, h: int, w: int) -> Optional[str]:
    """Why a polygon list is not lists of >= 3 (x, y) pairs of finite numbers within
    [-w, 2w] x [-h, 2h], or None."""
    if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
        return "malformed polygon (lists of >= 3 x, y pairs expected)"
    if not all(is_number(x) for p in seg for x in p):
        return "malformed polygon (lists of >= 3 x, y pairs expected)"
    if any(
        min(p[0::2]) < -w or max(p[0::2]) > 2 * w or min(p[1::2]) < -h or max(p[1::2]) > 2 * h
        for p in seg
    ):
        return "polygon coordinates far outside the frame"
    return None


def count_list_problem(counts: Any) -> Optional[str]:
    """Why uncompressed RLE counts are not a list of non-negative ints below 2**32, or None."""
    try:
        arr = np.asarray(counts)
    except (ValueError, TypeError, OverflowError):
        return "RLE counts must be non-negative ints"
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu") or (
        arr.size and (arr.min() < 0 or arr.max() >= 2**32)
    ):
        return "RLE counts must be non-negative ints"
    return None


def rle_total_problem(total: int, h: int, w: int, compressed: bool) -> Optional[str]:
    """Why RLE counts that cover ``total`` pixels do not fill an ``h`` x ``w`` frame, or None."""
    if total == h * w:
        return None
    if compressed:
        return "RLE covers {} pixels != {}x{}".format(total, h, w)
    return "RLE counts sum to {} != {}x{}".format(total, h, w)
