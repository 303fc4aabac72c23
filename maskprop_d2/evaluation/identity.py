"""Identity metrics (HOTA, DetA, AssA, IDF1, ID switches) of YouTube-VIS results, by TrackEval.

The numbers are TrackEval's own (``trackeval.Evaluator`` with its ``YouTubeVIS`` dataset and the
``HOTA``, ``CLEAR`` and ``Identity`` metrics): its combined-over-classes, class-averaged row
(``cls_comb_cls_av``). HOTA, DetA and AssA are the means over TrackEval's 19 alpha thresholds
(what its summary prints), as fractions; IDF1 a fraction; IDSW a count (summed over classes).
As in TrackEval, the class average is over *all* GT categories: a category with neither GT nor
predictions counts as 0.

One track, one category: a prediction whose masks are repeated under several categories (what
``MODEL.MASKPROP.INFERENCE.CATEGORIES_PER_INSTANCE`` > 1 writes, a hedge that AP rewards at low
scores) is scored once, under its highest-scoring category (:func:`best_category_entries`), so
that its copies do not count as false-positive tracks of the other categories. With
``best_category=False`` every entry is a track, as TrackEval's YouTube-VIS reader takes a
results file.

The inputs are validated as scoring validates them (``parse.parse``) and adapted, without
changing any mask, to what TrackEval's reader expects: GT RLE uncompressed (it calls
``frPyObjects`` on each GT frame), ``height``/``width`` and ``areas`` on each annotation, videos
named by ``file_names`` (one folder per video, made unique here), category names unique, results
RLE compressed with str counts. The files go to a temporary folder that is removed afterwards.

Memory: TrackEval holds every result in several Python copies (about 16x the results' JSON
size, measured: 31 KB per 24-frame 128x96 prediction) and allocates (G + N)^2 matrices per
(video, category) with G ground-truth and N predicted tracks. :func:`estimate_identity_bytes`
predicts the peak from the inputs; above ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`,
4 GiB) :func:`identity_metrics` refuses with a ``ValueError`` naming the estimate and the
limit, before anything is allocated.
"""

import contextlib
import io
import json
import os
import tempfile
from typing import Any, Dict, List

import numpy as np
import pycocotools.mask as mask_util

from ..utils.ytvis_fields import video_length
from .parse import decode_rle_strings, parse

__all__ = ["identity_metrics", "estimate_identity_bytes", "IDENTITY_NAMES",
           "trackeval_youtube_vis", "DEFAULT_MAX_BYTES", "best_category_entries"]

IDENTITY_NAMES = ("HOTA", "DetA", "AssA", "IDF1", "IDSW")
DEFAULT_MAX_BYTES = 4 * 2**30  # peak memory identity_metrics may plan for (estimated)
_BASE_BYTES = 300 * 2**20  # TrackEval, numpy, the interpreter (measured ~240 MB)
_PER_JSON_BYTE = 16  # peak bytes per byte of results JSON (measured 12-16 on synthetic data)


def _json_size(seg) -> int:
    """About how many bytes ``seg`` (an RLE dict or None) takes in a results JSON."""
    if seg is None:
        return 5
    c = seg.get("counts") if isinstance(seg, dict) else None
    if isinstance(c, (str, bytes)):
        return 40 + len(c)
    if isinstance(c, list):
        return 40 + 4 * len(c)  # compressed for TrackEval: about this long
    return 40


def estimate_identity_bytes(gt: Dict[str, Any], results: List[Dict[str, Any]]) -> int:
    """Predicted peak memory (bytes) of :func:`identity_metrics` on valid inputs: a base, a
    term linear in the results' JSON size, and TrackEval's per-(video, category) matrices
    (Identity: four (G + N)^2 float64 arrays; HOTA: 20 G x N)."""
    linear = 0
    tracks: Dict[tuple, List[int]] = {}
    for r in results:
        linear += 80 + sum(_json_size(s) for s in r["segmentations"])
        tracks.setdefault((r["video_id"], r["category_id"]), [0, 0])[1] += 1
    for a in gt.get("annotations", []):
        tracks.setdefault((a["video_id"], a["category_id"]), [0, 0])[0] += 1
    quad = max((32 * (g + n) ** 2 + 160 * g * n for g, n in tracks.values()), default=0)
    return _BASE_BYTES + _PER_JSON_BYTE * linear + quad
_TRACKER = "maskprop_d2"
_SPLIT = "val"


def _gt_for_trackeval(gt: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a validated GT in the form TrackEval reads (see the module docstring)."""
    videos = {v["id"]: v for v in gt["videos"]}
    out_videos = []
    for v in gt["videos"]:
        n = video_length(v)
        out_videos.append({
            "id": v["id"], "height": v["height"], "width": v["width"], "length": n,
            "file_names": ["video{}/{:05d}.jpg".format(v["id"], t) for t in range(n)],
        })  # fmt: skip
    cats = [{"id": c["id"], "name": "category{}".format(c["id"])} for c in gt["categories"]]
    # every GT frame as uncompressed counts: compressed strings (and rasterised polygons) are
    # decoded by one vectorised pass
    strings, where = [], []
    anns = []
    for ann in gt["annotations"]:
        v = videos[ann["video_id"]]
        h, w = v["height"], v["width"]
        segs = []
        for f, seg in enumerate(ann["segmentations"]):
            if seg is None:
                segs.append(None)
                continue
            if isinstance(seg, list):  # polygons, as scoring rasterises them
                seg = mask_util.merge(mask_util.frPyObjects(seg, h, w))
            c = seg["counts"]
            if isinstance(c, list):
                segs.append({"size": [h, w], "counts": [int(x) for x in c]})
            else:
                segs.append(None)
                strings.append(c)
                where.append((len(anns), f))
        anns.append(dict(
            id=ann["id"], video_id=ann["video_id"], category_id=ann["category_id"],
            iscrowd=int(ann.get("iscrowd", 0)), height=h, width=w, segmentations=segs,
        ))  # fmt: skip
    if strings:
        _ok, cnt, sid = decode_rle_strings(strings)
        bounds = np.searchsorted(sid, np.arange(len(strings) + 1))
        for k, (a, f) in enumerate(where):
            v = videos[anns[a]["video_id"]]
            anns[a]["segmentations"][f] = {
                "size": [v["height"], v["width"]],
                "counts": cnt[bounds[k] : bounds[k + 1]].tolist(),
            }
    for ann, src in zip(anns, gt["annotations"], strict=True):
        areas = src.get("areas")
        if not (isinstance(areas, list) and len(areas) == len(ann["segmentations"])):
            areas = [None if s is None else int(sum(s["counts"][1::2]))
                     for s in ann["segmentations"]]  # fmt: skip
        ann["areas"] = areas
    return {"videos": out_videos, "categories": cats, "annotations": anns}


def _results_for_trackeval(gt: Dict[str, Any], results: List[Dict[str, Any]]):
    videos = {v["id"]: v for v in gt["videos"]}
    out = []
    for r in results:
        v = videos[r["video_id"]]
        segs = []
        for seg in r["segmentations"]:
            if seg is None:
                segs.append(None)
                continue
            c = seg["counts"]
            if isinstance(c, list):  # uncompressed: compressed by pycocotools
                c = mask_util.frPyObjects({"size": [v["height"], v["width"]], "counts": c},
                                          v["height"], v["width"])["counts"]  # fmt: skip
            if isinstance(c, (bytes, bytearray)):
                c = bytes(c).decode("ascii")
            segs.append({"size": [v["height"], v["width"]], "counts": c})
        out.append({"video_id": r["video_id"], "category_id": r["category_id"],
                    "score": float(r["score"]), "segmentations": segs})  # fmt: skip
    return out


def trackeval_youtube_vis(gt_folder: str, trackers_folder: str, split: str, tracker: str):
    """Run TrackEval's YouTube-VIS evaluation (HOTA, CLEAR, Identity) on files in its own layout
    (``gt_folder/youtube_vis_<split>/*.json``, ``trackers_folder/youtube_vis_<split>/<tracker>/
    data/*.json``), quietly, writing nothing. Returns the class-averaged combined row as a dict
    of ``IDENTITY_NAMES``."""
    import trackeval  # imported here: it is slow to import and only this needs it

    eval_config = dict(
        USE_PARALLEL=False, BREAK_ON_ERROR=True, RETURN_ON_ERROR=False, LOG_ON_ERROR=None,
        PRINT_RESULTS=False, PRINT_ONLY_COMBINED=True, PRINT_CONFIG=False, TIME_PROGRESS=False,
        DISPLAY_LESS_PROGRESS=True, OUTPUT_SUMMARY=False, OUTPUT_EMPTY_CLASSES=False,
        OUTPUT_DETAILED=False, PLOT_CURVES=False,
    )  # fmt: skip
    dataset_config = dict(
        GT_FOLDER=os.path.join(gt_folder, ""), TRACKERS_FOLDER=os.path.join(trackers_folder, ""),
        OUTPUT_FOLDER=os.path.join(trackers_folder, "out"), TRACKERS_TO_EVAL=[tracker],
        SPLIT_TO_EVAL=split, PRINT_CONFIG=False,
    )  # fmt: skip
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        evaluator = trackeval.Evaluator(eval_config)
        dataset = trackeval.datasets.YouTubeVIS(dataset_config)
        metrics = [
            trackeval.metrics.HOTA({"PRINT_CONFIG": False}),
            trackeval.metrics.CLEAR({"PRINT_CONFIG": False, "THRESHOLD": 0.5}),
            trackeval.metrics.Identity({"PRINT_CONFIG": False, "THRESHOLD": 0.5}),
        ]
        res, _msg = evaluator.evaluate([dataset], metrics)
    row = res[dataset.get_name()][tracker]["COMBINED_SEQ"]["cls_comb_cls_av"]
    return {
        "HOTA": float(np.mean(row["HOTA"]["HOTA"])),
        "DetA": float(np.mean(row["HOTA"]["DetA"])),
        "AssA": float(np.mean(row["HOTA"]["AssA"])),
        "IDF1": float(row["Identity"]["IDF1"]),
        "IDSW": int(row["CLEAR"]["IDSW"]),
    }


def _seg_key(seg):
    """A hashable form of one frame's segmentation (None, an RLE or polygons)."""
    if seg is None:
        return None
    if isinstance(seg, dict):
        c = seg.get("counts")
        c = tuple(c) if isinstance(c, list) else c
        return (tuple(seg.get("size") or ()), c)
    return repr(seg)


def best_category_entries(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``results`` with each set of entries that share a video and the same masks on every frame
    reduced to its highest-scoring entry (the first one on a tie), in the input order: one entry
    per predicted track, under its best category."""
    best: Dict[tuple, int] = {}
    for i, r in enumerate(results):
        key = (r["video_id"], tuple(_seg_key(s) for s in r["segmentations"]))
        j = best.get(key)
        if j is None or float(r["score"]) > float(results[j]["score"]):
            best[key] = i
    return [results[i] for i in sorted(best.values())]


def identity_metrics(gt: Dict[str, Any], results: List[Dict[str, Any]],
                     max_bytes: int = DEFAULT_MAX_BYTES,
                     best_category: bool = True) -> Dict[str, float]:
    """{"HOTA", "DetA", "AssA", "IDF1" (fractions), "IDSW" (count)} of ``results`` against ``gt``
    by TrackEval (see the module docstring). ``best_category``: a track whose masks are repeated
    under several categories is scored once, under its highest-scoring one (False: every entry
    is a track). Raises ``ValueError`` for the inputs ``evaluate`` rejects, with the same
    messages, and when the estimated peak memory exceeds ``max_bytes`` (0: no limit)."""
    from .ytvis_eval import _raise_problems

    if isinstance(gt, dict) and "videos" in gt and "categories" in gt and "annotations" not in gt:
        raise ValueError("ground truth has no 'annotations': no identity metrics")
    gt_probs, res_probs, _ = parse(gt, results)
    _raise_problems("ground truth", gt_probs)
    _raise_problems("results", res_probs)
    if best_category:
        results = best_category_entries(results)
    need = estimate_identity_bytes(gt, results)
    if max_bytes and need > max_bytes:
        raise ValueError(
            "identity metrics refused: TrackEval would need about {:.3g} GiB for {} predictions "
            "(limit {:.3g} GiB; --identity-max-gb raises it); AP/AR are not affected".format(
                need / 2**30, len(results), max_bytes / 2**30)
        )
    with tempfile.TemporaryDirectory(prefix="maskprop_identity_") as d:
        gt_dir = os.path.join(d, "gt", "youtube_vis_" + _SPLIT)
        tr_dir = os.path.join(d, "trackers", "youtube_vis_" + _SPLIT, _TRACKER, "data")
        os.makedirs(gt_dir)
        os.makedirs(tr_dir)
        with open(os.path.join(gt_dir, "gt.json"), "w") as f:
            json.dump(_gt_for_trackeval(gt), f)
        with open(os.path.join(tr_dir, "results.json"), "w") as f:
            json.dump(_results_for_trackeval(gt, results), f)
        try:
            return trackeval_youtube_vis(
                os.path.join(d, "gt"), os.path.join(d, "trackers"), _SPLIT, _TRACKER
            )
        except Exception as e:  # TrackEval's own errors, after our validation: rare
            raise ValueError("TrackEval failed: {}: {}".format(type(e).__name__, e)) from e
