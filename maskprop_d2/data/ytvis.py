"""YouTube-VIS JSON -> detectron2 video dataset dicts, with validation and lazy registration.

Record format (one dict per video, in the JSON's video order)::

    {
        "file_names": [abs path of frame 0, ...],   # image_root joined, frame order kept
        "height": int, "width": int, "length": int, "video_id": int,
        "annotations": [                             # len == length; element f = frame f's objects
            [{"id": track id (= the JSON annotation id),
              "category_id": contiguous 0-based class,
              "bbox": [x, y, w, h], "bbox_mode": BoxMode.XYWH_ABS,
              "segmentation": RLE dict (compressed or uncompressed counts, as given) | polygons,
              "iscrowd": 0 | 1}, ...],
            ...
        ],
    }

An object that is absent in a frame (``null`` segmentation) is not listed in that frame.
Splits whose JSON has no top-level ``"annotations"`` (the public val/test sets) give records
**without** an ``"annotations"`` key, so downstream code can tell "no ground truth" from
"no objects".

The field rules (types, ranges, ids, RLE and polygon checks, the messages) are those of
:mod:`maskprop_d2.utils.ytvis_fields`, which the evaluator applies too. Annotation keys ``id``,
``video_id``, ``category_id`` and ``segmentations`` are required; ``bboxes`` and ``areas`` are
optional (a missing or ``null`` box is computed from the mask) and ``iscrowd`` defaults to 0.
A video needs ``file_names`` (its ``length`` defaults to their number). Problems of the top
level and the categories raise ``ValueError`` (``FileNotFoundError`` for missing files);
problems of videos and annotations (sizes, ids, lengths, RLE size / counts syntax and total,
polygons, boxes) are collected over the whole file and raised together as a
``DatasetValidationError`` naming the JSON file, the video/annotation id, the frame and the
field. Nothing is dropped silently: ``drop_invalid=True`` (``DATASETS.DROP_INVALID``) drops the
videos with problems and logs them.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional

import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils import ytvis_fields as fields
from ..utils.rle import rle_totals
from .validation import DatasetValidationError, Problem, drop_or_raise, read_json_file

__all__ = ["load_ytvis_json", "register_ytvis_instances", "distinct_colors"]

logger = logging.getLogger(__name__)

_RLE_CHUNK = 500  # compressed RLE strings checked per vectorised call


def distinct_colors(n: int) -> List[List[int]]:
    """``n`` distinct, deterministic RGB colours (golden-ratio hue walk, 3 brightness levels)."""
    import colorsys

    colors: List[List[int]] = []
    seen = set()
    i = 0
    while len(colors) < n:
        h = (i * 0.618033988749895) % 1.0
        s = (0.95, 0.65, 0.8)[i % 3]
        v = (0.95, 0.75, 0.55)[(i // 3) % 3]
        rgb = tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))
        if rgb not in seen:
            seen.add(rgb)
            colors.append(list(rgb))
        i += 1
    return colors


class _Invalid(ValueError):
    """One problem of one video or annotation (collected, see load_ytvis_json)."""


def _err(json_file: str, where: str, msg: str) -> ValueError:
    return _Invalid(f"{json_file}: {where}: {msg}")


def _frame_path_problem(fn: str) -> Optional[str]:
    """Why ``fn`` (a ``file_names`` entry) may not name a frame under the image root, or None:
    it must be a non-empty relative path without a ``..`` component."""
    if not fn or fn.strip() != fn:
        return f"frame path {fn!r} is empty or has surrounding blanks"
    if "\x00" in fn:
        return f"frame path {fn!r} holds a NUL character"
    if os.path.isabs(fn) or fn.startswith(("/", "\\")) or (len(fn) > 1 and fn[1] == ":"):
        return f"frame path {fn!r} is absolute; it must be relative to the image root"
    if ".." in fn.replace("\\", "/").split("/"):
        return f"frame path {fn!r} leaves the image root ('..')"
    return None


def _raise_first(json_file: str, where: str, *problems: Optional[str]) -> None:
    """Raise the first problem (a text of :mod:`..utils.ytvis_fields`) that is not None."""
    for problem in problems:
        if problem:
            raise _err(json_file, where, problem)


def _check_segmentation(seg: Any, h: int, w: int, json_file: str, where: str) -> Optional[str]:
    """Validate one frame's segmentation (RLE dict or polygon list) against the video size.

    Returns compressed RLE counts (str/bytes), whose syntax and total are checked in one
    vectorised pass by the caller, or None. Raises ``_Invalid`` for every other problem."""
    _raise_first(json_file, where, fields.segmentation_problem(seg, h, w))
    counts = seg["counts"] if isinstance(seg, dict) else None
    if not isinstance(counts, list):
        return counts
    _raise_first(json_file, where, fields.count_list_problem(counts)
                 or fields.rle_total_problem(sum(counts), h, w, compressed=False))  # fmt: skip
    return None


def _bbox_from_segmentation(seg: Any, h: int, w: int) -> List[float]:
    """XYWH box of an RLE/polygon segmentation (already validated)."""
    if isinstance(seg, dict):
        rle = seg
        if isinstance(seg["counts"], list):
            rle = mask_util.frPyObjects(seg, h, w)
    else:
        rle = mask_util.merge(mask_util.frPyObjects(seg, h, w))
    return [float(x) for x in mask_util.toBbox(rle)]


def _check_object(d: Any, json_file: str, where: str, required=()) -> None:
    """An object with an integer ``id`` and the ``required`` keys; raises :class:`_Invalid`."""
    _raise_first(json_file, where, fields.object_problem(d))
    missing = [k for k in required if k not in d]
    _raise_first(json_file, where, fields.id_problem(d),
                 "missing key(s) {}".format(missing) if missing else None)  # fmt: skip


def _require_list(data: dict, key: str, json_file: str) -> list:
    val = data[key]
    if not isinstance(val, list):
        raise DatasetValidationError(
            json_file, [Problem(None, f"{json_file}: top level: '{key}' must be a list, "
                                      f"got {type(val).__name__}")]
        )
    return val


def _load_categories(data: dict, json_file: str):
    """Categories of the JSON (a bad one makes every annotation doubtful: raise).

    Returns (cat_ids, names, id_map): the JSON category ids sorted, their names by id, and
    JSON id -> contiguous id.
    """
    names = {}
    for i, cat in enumerate(_require_list(data, "categories", json_file)):
        _check_object(cat, json_file, f"categories[{i}]", required=("name",))
        cid = cat["id"]
        if cid in names:
            raise _err(json_file, f"category id {cid}", "duplicate category id")
        _raise_first(json_file, f"category id {cid}", *fields.category_problems(cat))
        names[cid] = cat["name"]
    cat_ids = sorted(names)
    id_map = {cid: i for i, cid in enumerate(cat_ids)}
    return cat_ids, names, id_map


def _video_record(vid: Any, vid_id: Any, where: str, json_file: str, image_root_abs: str,
                  by_id: Dict[Any, Dict[str, Any]]) -> Dict[str, Any]:
    """The record (no annotations yet) of one ``videos`` entry; raises :class:`_Invalid`."""
    _check_object(vid, json_file, where, required=("file_names",))  # frames are read
    if vid_id in by_id:
        raise _err(json_file, f"video id {vid_id}", "duplicate video id")
    _raise_first(json_file, where, *fields.video_problems(vid))
    fns = vid["file_names"]
    for f, fn in enumerate(fns):  # frames lie under the image root, nowhere else
        _raise_first(json_file, f"{where}, frame {f}, field 'file_names'", _frame_path_problem(fn))
    return {
        "file_names": [os.path.join(image_root_abs, fn) for fn in fns],
        "height": vid["height"],
        "width": vid["width"],
        "length": fields.video_length(vid),
        "video_id": vid_id,
    }


def _load_videos(data: dict, json_file: str, image_root: str, problems: List[Problem]):
    """Records of the valid videos; the others' problems are appended to ``problems``.

    Returns (records, by_id, bad_video_ids): records in file order, the same records by video
    id, and the ids of videos with problems.
    """
    image_root_abs = os.path.abspath(image_root)
    records: List[Dict[str, Any]] = []
    by_id: Dict[Any, Dict[str, Any]] = {}
    bad_video_ids = set()
    for i, vid in enumerate(_require_list(data, "videos", json_file)):
        vid_id = vid.get("id") if isinstance(vid, dict) else None
        vid_id = vid_id if fields.is_int(vid_id) else None
        where = f"video id {'?' if vid_id is None else vid_id} (videos[{i}])"
        try:
            rec = _video_record(vid, vid_id, where, json_file, image_root_abs, by_id)
        except _Invalid as e:
            problems.append(Problem(vid_id, str(e)))
            if vid_id is not None:
                bad_video_ids.add(vid_id)
            continue
        records.append(rec)
        by_id[vid_id] = rec
    return records, by_id, bad_video_ids


def _check_annotation_fields(anno: dict, where: str, json_file: str,
                             by_id: Dict[Any, Dict[str, Any]], id_map: Dict[Any, int]) -> None:
    """Video, category, iscrowd, areas and per-frame list lengths (= the video's length) of one
    annotation; raises :class:`_Invalid`."""
    _raise_first(json_file, where, *fields.annotation_problems(anno, by_id, id_map))
    length = by_id[anno["video_id"]]["length"]
    for field in ("segmentations", "bboxes", "areas"):
        val = anno.get(field)
        if field == "bboxes" and val is not None and not isinstance(val, list):
            raise _err(json_file, where, f"'bboxes' must be a list, got {type(val).__name__}")
        if val is not None:
            _raise_first(json_file, where, fields.frames_problem(field, val, length))


def _track_objects(anno: dict, aid: Any, category: int, where: str, vid_id: Any, rec: dict,
                   json_file: str, problems: List[Problem], compressed: List[Any]):
    """Per-frame detectron2 objects of one checked annotation (track).

    Returns a list of (frame index, object dict). A frame with a problem is left out and its
    problem appended to ``problems``; a compressed RLE is queued in ``compressed`` (its bbox,
    if not given, is filled once the counts are checked).
    """
    h, w = rec["height"], rec["width"]
    segs = anno["segmentations"]
    bboxes = anno.get("bboxes")
    iscrowd = anno.get("iscrowd", 0)
    objs = []
    for f, seg in enumerate(segs):
        box = bboxes[f] if bboxes is not None else None
        fwhere = f"{where}, frame {f}"
        try:
            if seg is None:
                if box is not None:
                    raise _err(json_file, fwhere, "bbox given but segmentation is null")
                continue
            counts = _check_segmentation(
                seg, h, w, json_file, fwhere + ", field 'segmentations'"
            )
            if box is not None and (
                not isinstance(box, (list, tuple))
                or len(box) != 4
                or not all(map(fields.is_number, box))
            ):
                raise _err(json_file, fwhere + ", field 'bboxes'", f"bad box {box!r}")
        except _Invalid as e:
            problems.append(Problem(vid_id, str(e)))
            continue
        obj = {
            "id": aid,
            "category_id": category,
            "bbox": None if box is None else [float(x) for x in box],
            "bbox_mode": BoxMode.XYWH_ABS,
            "segmentation": seg,
            "iscrowd": int(iscrowd),
        }
        if counts is not None:
            compressed.append((counts, fwhere + ", field 'segmentations'", vid_id, obj, h, w))
        elif obj["bbox"] is None:
            obj["bbox"] = _bbox_from_segmentation(seg, h, w)
        objs.append((f, obj))
    return objs


def _load_annotations(data: dict, json_file: str, by_id: Dict[Any, Dict[str, Any]],
                      bad_video_ids: set, id_map: Dict[Any, int], problems: List[Problem],
                      compressed: List[Any]) -> int:
    """Attach each annotation's per-frame objects to its video's record.

    Problems are appended to ``problems``; annotations of videos with problems are skipped
    silently. Compressed RLEs are queued in ``compressed``. Returns the number of tracks kept.
    """
    seen_anno = set()
    num_objs = 0
    for i, anno in enumerate(_require_list(data, "annotations", json_file)):
        aid = anno.get("id", "?") if isinstance(anno, dict) else "?"
        aid = aid if fields.is_int(aid) else "?"
        where = f"annotation id {aid} (annotations[{i}])"
        vid_id = None
        try:
            _check_object(anno, json_file, where)
            if aid in seen_anno:
                raise _err(json_file, f"annotation id {aid}", "duplicate annotation id")
            seen_anno.add(aid)
            vid_id = anno.get("video_id")
            where = f"annotation id {aid} (video id {vid_id!r})"
            if fields.is_int(vid_id) and vid_id in bad_video_ids:
                continue  # the video's own problem is reported already (its fields are unknown)
            vid_id = vid_id if fields.is_int(vid_id) and vid_id in by_id else None
            _check_annotation_fields(anno, where, json_file, by_id, id_map)
        except _Invalid as e:
            problems.append(Problem(vid_id, str(e)))
            continue
        rec = by_id[vid_id]
        category = id_map[anno["category_id"]]
        objs = _track_objects(
            anno, aid, category, where, vid_id, rec, json_file, problems, compressed
        )
        for f, obj in objs:
            rec["annotations"][f].append(obj)
        num_objs += 1
    return num_objs


def _check_compressed(compressed: List[Any], json_file: str, problems: List[Problem]) -> None:
    """Check the queued compressed RLEs' counts; fill the missing bboxes of the good ones.

    Syntax and total (= h*w) of all of them in one vectorised pass; pycocotools would decode a
    malformed string to an arbitrary mask without complaint. (in chunks: rle_totals is several
    times faster per string on a few hundred at a time)
    """
    ok, total = [], []
    for k in range(0, len(compressed), _RLE_CHUNK):
        ok_k, total_k = rle_totals([c[0] for c in compressed[k : k + _RLE_CHUNK]])
        ok += ok_k.tolist()
        total += total_k.tolist()
    if compressed:
        for (_, fwhere, vid_id, obj, h, w), good, tot in zip(compressed, ok, total, strict=True):
            msg = fields.rle_total_problem(tot, h, w, compressed=True)
            if not good:
                msg = fields.MALFORMED_COUNTS
            elif msg is None:
                if obj["bbox"] is None:
                    obj["bbox"] = _bbox_from_segmentation(obj["segmentation"], h, w)
                continue
            problems.append(Problem(vid_id, f"{json_file}: {fwhere}: {msg}"))


def load_ytvis_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    drop_invalid: bool = False,
) -> List[Dict[str, Any]]:
    """Load a YouTube-VIS JSON into one record per video (see the module docstring).

    If ``dataset_name`` is given, its metadata gets ``thing_classes`` (JSON categories sorted by
    id) and ``thing_dataset_id_to_contiguous_id``; existing ``thing_colors`` are kept.

    Every video and annotation is checked (RLE size, compressed counts' syntax and total,
    uncompressed counts' sum, polygons, boxes, ids, lengths); the problems of the whole file are
    collected and raised together as a :class:`DatasetValidationError` (first 10 listed). With
    ``drop_invalid``, the videos with problems (and annotations that cannot be attached to a
    video) are dropped instead and logged as a warning.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"YouTube-VIS json file not found: {json_file}")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image root not found: {image_root} (for {json_file})")
    data = read_json_file(json_file)
    if not isinstance(data, dict):
        raise _err(json_file, "top level", "expected a JSON object")
    missing = [k for k in ("videos", "categories") if k not in data]
    if missing:
        raise _err(json_file, "top level", f"missing key(s) {missing}")

    cat_ids, names, id_map = _load_categories(data, json_file)
    if dataset_name is not None:
        _set_category_metadata(dataset_name, [names[c] for c in cat_ids], id_map)

    problems: List[Problem] = []
    records, by_id, bad_video_ids = _load_videos(data, json_file, image_root, problems)

    if "annotations" not in data:
        logger.info(f"{json_file}: no 'annotations' (no ground truth); {len(records)} videos")
        return drop_or_raise(records, problems, json_file, drop_invalid)
    for rec in records:
        rec["annotations"] = [[] for _ in range(rec["length"])]

    # compressed RLEs, checked together at the end: (counts, where, video id, object dict, h, w)
    compressed: List[Any] = []
    num_objs = _load_annotations(
        data, json_file, by_id, bad_video_ids, id_map, problems, compressed
    )
    _check_compressed(compressed, json_file, problems)
    records = drop_or_raise(records, problems, json_file, drop_invalid)
    logger.info(f"Loaded {len(records)} videos, {num_objs} object tracks from {json_file}")
    return records


def _set_category_metadata(name: str, classes: List[str], id_map: Dict[int, int]) -> None:
    """Set thing_classes / id map from the JSON (JSON wins over registered values)."""
    meta = MetadataCatalog.get(name)
    for key, val in (("thing_classes", classes), ("thing_dataset_id_to_contiguous_id", id_map)):
        old = meta.get(key)
        if old is not None and old != val:
            logger.warning(f"{name}: {key} in the JSON differs from the registered one; using JSON")
            delattr(meta, key)
        setattr(meta, key, val)
    colors = meta.get("thing_colors")
    if colors is not None and len(colors) != len(classes):
        logger.warning(f"{name}: thing_colors has {len(colors)} entries for {len(classes)} classes")
        delattr(meta, "thing_colors")
        colors = None
    if colors is None:
        meta.thing_colors = distinct_colors(len(classes))


def register_ytvis_instances(name: str, metadata: dict, json_file: str, image_root: str) -> None:
    """Register a YouTube-VIS split lazily: nothing is read until ``DatasetCatalog.get(name)``."""
    assert isinstance(name, str), name
    DatasetCatalog.register(name, lambda: load_ytvis_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="ytvis", **metadata
    )
