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

Annotation keys ``id``, ``video_id``, ``category_id`` and ``segmentations`` are required;
``bboxes`` and ``areas`` are optional (a missing or ``null`` box is computed from the mask) and
``iscrowd`` defaults to 0. Every problem raises ``ValueError`` (``FileNotFoundError`` for missing
files) naming the JSON file, the video/annotation id and the field; nothing is dropped silently.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional

import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

__all__ = ["load_ytvis_json", "register_ytvis_instances", "distinct_colors"]

logger = logging.getLogger(__name__)

_VIDEO_KEYS = ("id", "width", "height", "length", "file_names")
_ANNO_KEYS = ("id", "video_id", "category_id", "segmentations")
_CATEGORY_KEYS = ("id", "name")


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


def _err(json_file: str, where: str, msg: str) -> ValueError:
    return ValueError(f"{json_file}: {where}: {msg}")


def _check_segmentation(seg: Any, h: int, w: int, json_file: str, where: str) -> None:
    """Validate one frame's segmentation (RLE dict or polygon list) against the video size."""
    if isinstance(seg, dict):
        if "size" not in seg or "counts" not in seg:
            raise _err(json_file, where, "RLE segmentation must have 'size' and 'counts'")
        size = [int(x) for x in seg["size"]]
        if size != [h, w]:
            raise _err(
                json_file, where, f"mask size {size} != video size [height, width] = {[h, w]}"
            )
        counts = seg["counts"]
        if isinstance(counts, list):
            if sum(counts) != h * w:
                raise _err(
                    json_file, where,
                    f"uncompressed RLE counts sum to {sum(counts)}, expected {h * w} (= h*w)",
                )
        elif not isinstance(counts, (str, bytes)):
            raise _err(json_file, where, f"RLE counts must be str or list, got {type(counts)}")
    elif isinstance(seg, list):
        if len(seg) == 0:
            raise _err(json_file, where, "empty polygon list (use null for an absent object)")
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise _err(
                    json_file, where,
                    "polygon must be a flat list [x0, y0, x1, y1, ...] of >= 3 points",
                )
    else:
        raise _err(json_file, where, f"segmentation must be an RLE dict or polygons, got {seg!r}")


def _bbox_from_segmentation(seg: Any, h: int, w: int) -> List[float]:
    """XYWH box of an RLE/polygon segmentation (already validated)."""
    if isinstance(seg, dict):
        rle = seg
        if isinstance(seg["counts"], list):
            rle = mask_util.frPyObjects(seg, h, w)
    else:
        rle = mask_util.merge(mask_util.frPyObjects(seg, h, w))
    return [float(x) for x in mask_util.toBbox(rle)]


def _require(d: dict, keys, json_file: str, where: str) -> None:
    if not isinstance(d, dict):
        raise _err(json_file, where, f"expected an object, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise _err(json_file, where, f"missing key(s) {missing}")


def load_ytvis_json(
    json_file: str, image_root: str, dataset_name: Optional[str] = None
) -> List[Dict[str, Any]]:
    """Load a YouTube-VIS JSON into one record per video (see the module docstring).

    If ``dataset_name`` is given, its metadata gets ``thing_classes`` (JSON categories sorted by
    id) and ``thing_dataset_id_to_contiguous_id``; existing ``thing_colors`` are kept.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"YouTube-VIS json file not found: {json_file}")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image root not found: {image_root} (for {json_file})")
    with open(json_file) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise _err(json_file, "top level", "expected a JSON object")
    missing = [k for k in ("videos", "categories") if k not in data]
    if missing:
        raise _err(json_file, "top level", f"missing key(s) {missing}")

    # categories -> contiguous ids
    cat_ids = []
    names = {}
    for i, cat in enumerate(data["categories"]):
        _require(cat, _CATEGORY_KEYS, json_file, f"categories[{i}]")
        cid = cat["id"]
        if cid in names:
            raise _err(json_file, f"category id {cid}", "duplicate category id")
        names[cid] = cat["name"]
        cat_ids.append(cid)
    cat_ids.sort()
    id_map = {cid: i for i, cid in enumerate(cat_ids)}
    if dataset_name is not None:
        _set_category_metadata(dataset_name, [names[c] for c in cat_ids], id_map)

    # videos
    image_root_abs = os.path.abspath(image_root)
    records: List[Dict[str, Any]] = []
    by_id: Dict[Any, Dict[str, Any]] = {}
    for i, vid in enumerate(data["videos"]):
        where = f"video id {vid.get('id', '?') if isinstance(vid, dict) else '?'} (videos[{i}])"
        _require(vid, _VIDEO_KEYS, json_file, where)
        vid_id = vid["id"]
        if vid_id in by_id:
            raise _err(json_file, f"video id {vid_id}", "duplicate video id")
        length = int(vid["length"])
        if len(vid["file_names"]) != length:
            raise _err(
                json_file, f"video id {vid_id}",
                f"file_names has {len(vid['file_names'])} entries but length is {length}",
            )
        rec = {
            "file_names": [os.path.join(image_root_abs, fn) for fn in vid["file_names"]],
            "height": int(vid["height"]),
            "width": int(vid["width"]),
            "length": length,
            "video_id": vid_id,
        }
        records.append(rec)
        by_id[vid_id] = rec

    if "annotations" not in data:
        logger.info(f"{json_file}: no 'annotations' (no ground truth); {len(records)} videos")
        return records
    for rec in records:
        rec["annotations"] = [[] for _ in range(rec["length"])]

    seen_anno = set()
    num_objs = 0
    for i, anno in enumerate(data["annotations"]):
        aid = anno.get("id", "?") if isinstance(anno, dict) else "?"
        where = f"annotation id {aid} (annotations[{i}])"
        _require(anno, _ANNO_KEYS, json_file, where)
        if aid in seen_anno:
            raise _err(json_file, f"annotation id {aid}", "duplicate annotation id")
        seen_anno.add(aid)
        vid_id = anno["video_id"]
        where = f"annotation id {aid} (video id {vid_id})"
        if vid_id not in by_id:
            raise _err(json_file, where, f"video_id {vid_id} is not in 'videos'")
        if anno["category_id"] not in id_map:
            raise _err(
                json_file, where, f"category_id {anno['category_id']} is not in 'categories'"
            )
        rec = by_id[vid_id]
        length, h, w = rec["length"], rec["height"], rec["width"]
        segs = anno["segmentations"]
        bboxes = anno.get("bboxes")
        areas = anno.get("areas")
        for field, val in (("segmentations", segs), ("bboxes", bboxes), ("areas", areas)):
            if val is None and field != "segmentations":
                continue
            if not isinstance(val, list) or len(val) != length:
                n = len(val) if isinstance(val, list) else type(val).__name__
                raise _err(json_file, where, f"'{field}' has {n} entries, video length is {length}")
        iscrowd = anno.get("iscrowd", 0)
        if iscrowd not in (0, 1, True, False):
            raise _err(json_file, where, f"iscrowd must be 0 or 1, got {iscrowd!r}")
        category = id_map[anno["category_id"]]

        for f, seg in enumerate(segs):
            box = bboxes[f] if bboxes is not None else None
            fwhere = f"{where}, frame {f}"
            if seg is None:
                if box is not None:
                    raise _err(json_file, fwhere, "bbox given but segmentation is null")
                continue
            _check_segmentation(seg, h, w, json_file, fwhere + ", field 'segmentations'")
            if box is None:
                box = _bbox_from_segmentation(seg, h, w)
            elif not isinstance(box, (list, tuple)) or len(box) != 4:
                raise _err(json_file, fwhere + ", field 'bboxes'", f"bad box {box!r}")
            rec["annotations"][f].append(
                {
                    "id": aid,
                    "category_id": category,
                    "bbox": [float(x) for x in box],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "segmentation": seg,
                    "iscrowd": int(iscrowd),
                }
            )
        num_objs += 1
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
