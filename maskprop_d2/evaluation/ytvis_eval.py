"""YouTube-VIS video instance segmentation metrics (own implementation; ``docs/evaluation.md``).

Works on plain JSON-like objects: a GT dict in YTVIS format (with "annotations") and a results list.

Semantics (those of the official YouTube-VIS API):

* video IoU of a detection d and a GT g: sum over frames of |d ∩ g| divided by the sum over frames
  of |d ∪ g| (a frame where only one exists adds its area to the union; frames where neither exists
  are skipped); 0 when the union is empty;
* per (video, category) (``useCats``): detections sorted by score (stable), at most 100 kept;
* IoU thresholds .50:.05:.95, 101 recall points, maxDets (1, 10, 100);
* area of a track = mean per-frame area over the frames where it is present with a non-zero area
  (GT: its "areas" field when given, else the mask areas; detections: the mask areas); ranges all
  [0, 1e10], small [0, 128²], medium [128², 256²], large [256², 1e10], bounds inclusive;
* crowd GTs (and GTs outside the area range) are ignored: detections matched to them are ignored and
  a crowd GT can absorb several detections; an unmatched detection outside the area range is
  ignored. Crowd GTs use the same video IoU as the others (as the official YTVIS code does);
* greedy COCO matching per threshold (IoU == threshold matches), COCO accumulation (precision
  envelope, interpolation at the recall points), averages over the entries that are not -1.

Differences from the official code, on purpose: wrong-length segmentations, unknown video or
category ids, malformed RLE and mask-size mismatches raise ``ValueError``; an empty results list
scores 0 (-1 only where no GT defines a value); no ``np.float`` (numpy 1.x and 2.x); precision is
``tp / (tp + fp)`` (0 where both are 0) instead of ``tp / (tp + fp + eps)``, so a perfect result is
exactly 1.0 (the official value differs by ~1e-16).

Inputs are validated and decoded by ``parse.parse`` (the same code as ``--check``): every RLE of
the GT and the results is decoded by vectorised numpy passes over batches of entries (see
``parse``) and each track becomes one run-length *video mask* (its frames' pixels end to end).
The IoUs of all (detection, GT) pairs of a (video, category) then take one
``pycocotools.mask.iou`` call; the integer intersections are recovered from the IoU and the two
areas (``I = iou (a + b) / (1 + iou)``, rounded), so that a video longer than 2**31 pixels can be
split into chunks of frames and summed.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

from .parse import parse

__all__ = [
    "evaluate",
    "video_iou",
    "YTVISEvalResult",
    "STAT_NAMES",
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "MAX_DETS",
]

STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
AREA_RANGES = (
    ("all", (0.0, 1e10)),
    ("small", (0.0, 128.0**2)),
    ("medium", (128.0**2, 256.0**2)),
    ("large", (256.0**2, 1e10)),
)
# The same expressions as the official API, so that the thresholds are bit-identical.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)

_MAX_ERRORS_SHOWN = 10


@dataclass
class YTVISEvalResult:
    """Metrics of one evaluation.

    stats: the 12 official stats as fractions (-1 where undefined), in ``STAT_NAMES`` order.
    per_category_ap: {category_id: AP (IoU .50:.95, area all, 100 dets) fraction, nan without GT}.
    precision: (T=10, R=101, K, A=4, M=3); recall: (T, K, A, M); -1 where undefined.
    """

    stats: np.ndarray
    per_category_ap: Dict[int, float]
    category_ids: List[int]
    category_names: Dict[int, str] = field(default_factory=dict)
    precision: Optional[np.ndarray] = None
    recall: Optional[np.ndarray] = None

    def as_dict(self) -> Dict[str, float]:
        """{"AP": ..., "AP50": ..., ..., "ARl": ...} as fractions (-1 where undefined)."""
        return {k: float(v) for k, v in zip(STAT_NAMES, self.stats, strict=True)}

    def summary(self) -> str:
        """The 12-line summary in the COCO layout, with YTVIS area ranges."""
        lines = []
        spec = [
            (1, None, "all", 100), (1, 0.5, "all", 100), (1, 0.75, "all", 100),
            (1, None, "small", 100), (1, None, "medium", 100), (1, None, "large", 100),
            (0, None, "all", 1), (0, None, "all", 10), (0, None, "all", 100),
            (0, None, "small", 100), (0, None, "medium", 100), (0, None, "large", 100),
        ]  # fmt: skip
        for value, (ap, thr, area, md) in zip(self.stats, spec, strict=True):
            title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
            iou = (
                "{:0.2f}".format(thr)
                if thr is not None
                else "{:0.2f}:{:0.2f}".format(IOU_THRESHOLDS[0], IOU_THRESHOLDS[-1])
            )
            lines.append(
                " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}".format(
                    title, kind, iou, area, md, value
                )
            )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ scoring
def _raise_problems(what: str, problems: List[str]) -> None:
    if problems:
        more = len(problems) - _MAX_ERRORS_SHOWN
        msg = "; ".join(problems[:_MAX_ERRORS_SHOWN])
        if more > 0:
            msg += "; ... and {} more".format(more)
        raise ValueError("invalid {}: {}".format(what, msg))


def _video_ious(dts, gts) -> np.ndarray:
    """(D, G) video IoUs of tracks of one video (see ``parse.Parsed``): per chunk of frames, the
    IoUs of their video masks (one pycocotools call); the integer intersections are recovered
    (``I = iou (a + b) / (1 + iou)``, rounded) and summed over chunks."""
    nd, ng = len(dts), len(gts)
    if nd == 0 or ng == 0:
        return np.zeros((nd, ng))
    inter = np.zeros((nd, ng))
    da = np.zeros(nd)
    ga = np.zeros(ng)
    for c in range(len(gts[0][5])):
        dr = [d[5][c][0] for d in dts]
        gr = [g[5][c][0] for g in gts]
        a = np.array([d[5][c][1] for d in dts], dtype=np.float64)
        b = np.array([g[5][c][1] for g in gts], dtype=np.float64)
        iou = np.asarray(mask_util.iou(dr, gr, [0] * ng), dtype=np.float64).reshape(nd, ng)
        inter += np.rint(iou * (a[:, None] + b[None, :]) / (1.0 + iou))
        da += a
        ga += b
    union = da[:, None] + ga[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(ious, gt_ignore, gt_crowd):
    """Greedy COCO matching at every IoU threshold. Returns (dt_matched (T, D) bool, the matched
    GT's index (T, D), -1 where none). Only detections with an IoU >= the lowest threshold with
    some GT can match; the others are skipped (what the full loop would do with them)."""
    nt, nd = len(IOU_THRESHOLDS), ious.shape[0]
    ng = len(gt_ignore)
    dt_matched = np.zeros((nt, nd), dtype=bool)
    dt_gt = np.full((nt, nd), -1, dtype=np.int64)
    if ng == 0 or nd == 0:
        return dt_matched, dt_gt
    order = np.argsort(gt_ignore, kind="mergesort")  # non-ignored GTs first
    ious_o, gt_ignore_o, gt_crowd_o = ious[:, order], gt_ignore[order], gt_crowd[order]
    thr = _THR[:, None]
    taken = np.zeros((nt, ng), dtype=bool)
    for d in np.flatnonzero((ious_o >= thr[0, 0]).any(1)):
        row = ious_o[d][None, :]
        avail = (~taken | gt_crowd_o[None, :]) & (row >= thr)
        regular = avail & ~gt_ignore_o[None, :]
        use = np.where(regular.any(1, keepdims=True), regular, avail)
        has = np.flatnonzero(use.any(1))
        if len(has) == 0:
            continue
        # best IoU; among equal IoUs the last GT (what the official loop does)
        score = np.where(use[has], row, -1.0)
        m = ng - 1 - np.argmax(score[:, ::-1], axis=1)
        dt_matched[has, d] = True
        dt_gt[has, d] = order[m]
        taken[has, m] = True
    return dt_matched, dt_gt


_THR = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
_AREA_LO = np.array([rng[0] for _, rng in AREA_RANGES])[:, None]
_AREA_HI = np.array([rng[1] for _, rng in AREA_RANGES])[:, None]


def _accumulate(evals, num_cats):
    """evals[k][a]: list over videos of (scores, dt_matched, dt_ignore, gt_ignore)."""
    nt, nr, na, nm = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((nt, nr, num_cats, na, nm))
    recall = -np.ones((nt, num_cats, na, nm))
    for k in range(num_cats):
        for a in range(na):
            E = evals[k][a]
            if not E:
                continue
            npig = int(sum(np.count_nonzero(~e[3]) for e in E))
            if npig == 0:
                continue
            scores_all = np.concatenate([e[0] for e in E])
            rank_all = np.concatenate([np.arange(len(e[0])) for e in E])
            dtm_all = np.concatenate([e[1] for e in E], axis=1)
            dtig_all = np.concatenate([e[2] for e in E], axis=1)
            for m, max_det in enumerate(MAX_DETS):
                sel = rank_all < max_det
                scores = scores_all[sel]
                inds = np.argsort(-scores, kind="mergesort")
                dtm = dtm_all[:, sel][:, inds]
                dtig = dtig_all[:, sel][:, inds]
                tp = np.cumsum(dtm & ~dtig, axis=1).astype(np.float64)
                fp = np.cumsum(~dtm & ~dtig, axis=1).astype(np.float64)
                nd = tp.shape[1]
                if nd == 0:
                    recall[:, k, a, m] = 0.0
                    precision[:, :, k, a, m] = 0.0
                    continue
                rc = tp / npig
                denom = tp + fp
                pr = np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), 0.0)
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
                recall[:, k, a, m] = rc[:, -1]
                for t in range(nt):
                    idx = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                    valid = idx < nd
                    precision[t, :, k, a, m] = np.where(valid, pr[t, np.minimum(idx, nd - 1)], 0.0)
    return precision, recall


def _mean_defined(x: np.ndarray) -> float:
    x = x[x > -1]
    return float(np.mean(x)) if x.size else -1.0


def _stats(precision, recall) -> np.ndarray:
    areas = [name for name, _ in AREA_RANGES]
    t50 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0])
    t75 = int(np.flatnonzero(IOU_THRESHOLDS == 0.75)[0])
    a = {n: i for i, n in enumerate(areas)}
    m100 = MAX_DETS.index(100)
    s = [
        _mean_defined(precision[:, :, :, a["all"], m100]),
        _mean_defined(precision[t50, :, :, a["all"], m100]),
        _mean_defined(precision[t75, :, :, a["all"], m100]),
        _mean_defined(precision[:, :, :, a["small"], m100]),
        _mean_defined(precision[:, :, :, a["medium"], m100]),
        _mean_defined(precision[:, :, :, a["large"], m100]),
        _mean_defined(recall[:, :, a["all"], MAX_DETS.index(1)]),
        _mean_defined(recall[:, :, a["all"], MAX_DETS.index(10)]),
        _mean_defined(recall[:, :, a["all"], m100]),
        _mean_defined(recall[:, :, a["small"], m100]),
        _mean_defined(recall[:, :, a["medium"], m100]),
        _mean_defined(recall[:, :, a["large"], m100]),
    ]
    return np.array(s, dtype=np.float64)


def evaluate(
    gt: Dict[str, Any], results: List[Dict[str, Any]], timings: Optional[Dict[str, float]] = None
) -> YTVISEvalResult:
    """YouTube-VIS metrics of ``results`` (official results format) against ``gt`` (YTVIS dict).

    GT segmentations may be compressed RLE, uncompressed RLE or polygons; results compressed or
    uncompressed RLE (str, bytes or list counts). Raises ``ValueError`` naming the entry, id and
    field for a defective GT (duplicate / missing / mistyped ids, sizes, lengths, non-objects, a
    GT without annotations) or results (unknown video/category ids, wrong segmentation lengths,
    mask-size mismatches, malformed RLE). ``timings``: a dict that receives the CPU seconds
    (``time.process_time``) spent in "parse" (validation + decoding), "iou" and "match"
    (matching + accumulation).
    """
    t0 = time.process_time()
    if isinstance(gt, dict) and "videos" in gt and "categories" in gt and "annotations" not in gt:
        raise ValueError(
            "ground truth has no 'annotations' (public val/test splits are scored only by the "
            "server); use check_results() to validate a submission"
        )
    gt_probs, res_probs, parsed = parse(gt, results)
    _raise_problems("ground truth", gt_probs)
    _raise_problems("results", res_probs)
    cat_ids = sorted(parsed.cats)
    cat_index = {c: k for k, c in enumerate(cat_ids)}
    groups: Dict[Tuple[int, int], Tuple[list, list]] = {}
    for g in parsed.gt:
        groups.setdefault((g[2], g[1]), ([], []))[0].append(g)
    for d in parsed.dt:
        groups.setdefault((d[2], d[1]), ([], []))[1].append(d)
    t1 = time.process_time()
    t_iou = 0.0
    evals = [[[] for _ in AREA_RANGES] for _ in cat_ids]
    nt, na = len(IOU_THRESHOLDS), len(AREA_RANGES)
    no_dets = (np.zeros(0), np.zeros((nt, 0), dtype=bool))
    for key in sorted(groups):
        g, d = groups[key]
        ev = evals[cat_index[key[0]]]
        crowd = np.array([x[3] for x in g], dtype=bool)
        g_area = np.array([x[4] for x in g], dtype=np.float64)
        g_ignore = crowd | (g_area < _AREA_LO) | (g_area > _AREA_HI)  # (area range, GT)
        if not d:
            for a in range(na):
                ev[a].append(no_dets + no_dets[1:] + (g_ignore[a],))
            continue
        if len(d) > 1:  # stable sort by score, at most MAX_DETS[-1]
            order = np.argsort([-x[3] for x in d], kind="mergesort")[: MAX_DETS[-1]]
            d = [d[i] for i in order]
        d_area = np.array([x[4] for x in d], dtype=np.float64)
        scores = np.array([x[3] for x in d], dtype=np.float64)
        outside = (d_area < _AREA_LO) | (d_area > _AREA_HI)  # (area range, detection)
        if not g:  # nothing to match: a detection is ignored when outside the area range
            dtm = np.zeros((nt, len(d)), dtype=bool)
            for a in range(na):
                ev[a].append((scores, dtm, np.broadcast_to(outside[a], dtm.shape), g_ignore[a]))
            continue
        ta = time.process_time()
        ious = _video_ious(d, g)
        t_iou += time.process_time() - ta
        cache = {}
        for a in range(na):
            ck = g_ignore[a].tobytes()
            if ck not in cache:
                cache[ck] = _match(ious, g_ignore[a], crowd)
            dtm, dt_gt = cache[ck]
            dtig = (dtm & g_ignore[a][np.maximum(dt_gt, 0)]) | (~dtm & outside[a])
            ev[a].append((scores, dtm, dtig, g_ignore[a]))
    precision, recall = _accumulate(evals, len(cat_ids))
    per_cat = {}
    for k, cat in enumerate(cat_ids):
        v = _mean_defined(precision[:, :, k, 0, MAX_DETS.index(100)])
        per_cat[cat] = v if v > -1 else math.nan
    out = YTVISEvalResult(
        stats=_stats(precision, recall),
        per_category_ap=per_cat,
        category_ids=cat_ids,
        category_names=dict(parsed.cats),
        precision=precision,
        recall=recall,
    )
    if timings is not None:
        t3 = time.process_time()
        timings.update(parse=t1 - t0, iou=t_iou, match=(t3 - t1) - t_iou)
    return out


def video_iou(
    det_segmentations: Sequence, gt_segmentations: Sequence, height: int, width: int
) -> float:
    """Video IoU of two per-frame segmentation lists (RLE/polygons/None) of one video."""
    if len(det_segmentations) != len(gt_segmentations):
        raise ValueError("segmentation lists differ in length")
    gt = {
        "videos": [{"id": 1, "height": height, "width": width,
                    "length": len(gt_segmentations)}],
        "categories": [{"id": 1}],
        "annotations": [
            {"id": i + 1, "video_id": 1, "category_id": 1, "segmentations": list(s)}
            for i, s in enumerate((det_segmentations, gt_segmentations))
        ],
    }  # fmt: skip
    gt_probs, _, parsed = parse(gt, None)
    _raise_problems("segmentations", [p.split(": ", 1)[1] if ": " in p else p for p in gt_probs])
    return float(_video_ious([parsed.gt[0]], [parsed.gt[1]])[0, 0])
