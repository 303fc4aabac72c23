"""A small YouTube-VIS file for the loader tests (2 videos x 3 frames of 32x24: compressed and
uncompressed RLE, polygons, an absent frame) and the edits the tests make to it."""
import copy
import json

import cv2
import numpy as np
import pycocotools.mask as mask_util

H, W, T = 24, 32, 3


def rect(x0, y0, x1, y1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def compressed(m):
    rle = mask_util.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def uncompressed(m):
    """Column-major run lengths, starting with a (possibly empty) run of zeros."""
    flat = m.flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [H, W], "counts": [int(c) for c in counts]}


def box(m):
    ys, xs = np.nonzero(m)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


# ground-truth masks per (annotation id, frame); None = absent
MASKS = {
    10: [rect(2, 3, 10, 12), rect(4, 3, 12, 12), rect(6, 3, 14, 12)],   # compressed RLE
    11: [rect(20, 10, 30, 20), None, rect(18, 8, 28, 18)],            # uncompressed RLE
    20: [rect(0, 0, 8, 8), rect(1, 1, 9, 9), None],                   # polygons
}
POLYS = {  # polygons of MASKS[20] (pixel-corner outlines)
    0: [[0, 0, 8, 0, 8, 8, 0, 8]],
    1: [[1, 1, 9, 1, 9, 9, 1, 9]],
}


def make_ytvis(tmp_path, with_annotations=True):
    """(data, image root): 2 videos x 3 frames of 32x24 written under ``tmp_path``; video ids 5, 2
    (JSON order); categories 7, 3 (unsorted). ``data`` is a fresh copy each call."""
    root = tmp_path / "JPEGImages"
    videos = []
    for vid, folder in ((5, "vid_a"), (2, "vid_b")):
        (root / folder).mkdir(parents=True)
        names = [f"{folder}/{f:05d}.jpg" for f in (0, 5, 10)]
        for n in names:
            cv2.imwrite(str(root / n), np.full((H, W, 3), 128, np.uint8))
        videos.append({"id": vid, "width": W, "height": H, "length": T, "file_names": names})
    annos = [
        {"id": 10, "video_id": 5, "category_id": 3, "iscrowd": 0,
         "segmentations": [compressed(m) for m in MASKS[10]],
         "areas": [float(m.sum()) for m in MASKS[10]],
         "bboxes": [box(m) for m in MASKS[10]]},
        {"id": 11, "video_id": 5, "category_id": 7, "iscrowd": 1,
         "segmentations": [None if m is None else uncompressed(m) for m in MASKS[11]],
         "areas": [None if m is None else float(m.sum()) for m in MASKS[11]],
         "bboxes": [None if m is None else box(m) for m in MASKS[11]]},
        {"id": 20, "video_id": 2, "category_id": 7, "iscrowd": 0,
         "segmentations": [POLYS[0], POLYS[1], None],
         "areas": [64.0, 64.0, None],
         "bboxes": [None, None, None]},  # computed from the polygons
    ]
    data = {
        "videos": videos,
        "categories": [{"id": 7, "name": "seven", "supercategory": "x"},
                       {"id": 3, "name": "three", "supercategory": "x"}],
    }
    if with_annotations:
        data["annotations"] = annos
    return copy.deepcopy(data), str(root)


def write_json(tmp_path, data, name="ann.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


def annotation(data, aid):
    return next(a for a in data["annotations"] if a["id"] == aid)


def video(data, vid):
    return next(v for v in data["videos"] if v["id"] == vid)
