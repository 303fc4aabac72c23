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

IoUs are computed per (video, category) and per frame with ``pycocotools.mask.iou`` on all
(detection, GT) pairs of the frame at once, directly on the RLEs; the integer intersection is
recovered from the IoU and the two areas (``I = iou (a + b) / (1 + iou)``, rounded) and summed over
frames.
"""

import math
import numbers
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

from .results_io import _is_id, check_results, segmentation_problems

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
_MAX_DIM = 2**14  # largest video height / width accepted (masks are height * width)


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


@dataclass
class _Track:
    rles: List[Optional[dict]]  # per frame, compressed RLE or None
    frame_areas: np.ndarray  # (L,) pixel areas, 0 where absent
    area: float  # mean area over the frames present with a non-zero area
    score: float = 0.0
    iscrowd: bool = False


# ------------------------------------------------------------------------------------ parsing
def _video_length(v: dict) -> int:
    if "length" in v:
        return int(v["length"])
    return len(v.get("file_names", []))


def _mean_positive(values) -> float:
    vals = [float(a) for a in values if a]  # the official `if a`: null and 0 are skipped
    return float(np.mean(vals)) if vals else 0.0


def _to_rles(segs: Sequence, h: int, w: int) -> List[Optional[dict]]:
    """Per-frame segmentations (validated) -> compressed RLE dicts or None."""
    out: List[Optional[dict]] = []
    for seg in segs:
        if seg is None:
            out.append(None)
        elif isinstance(seg, list):  # polygons
            out.append(mask_util.merge(mask_util.frPyObjects(seg, h, w)))
        elif isinstance(seg["counts"], list):  # uncompressed RLE
            out.append(mask_util.frPyObjects(seg, h, w))
        else:
            out.append({"size": [h, w], "counts": seg["counts"]})
    return out


def _make_track(segs: Sequence, h: int, w: int, areas_field=None) -> _Track:
    rles = _to_rles(segs, h, w)
    present = [i for i, r in enumerate(rles) if r is not None]
    frame_areas = np.zeros(len(rles), dtype=np.float64)
    if present:
        frame_areas[present] = mask_util.area([rles[i] for i in present])
    if isinstance(areas_field, list) and len(areas_field) == len(rles):
        area = _mean_positive(areas_field)
    else:
        area = _mean_positive(frame_areas)
    return _Track(rles=rles, frame_areas=frame_areas, area=area)


def _raise_problems(what: str, problems: List[str]) -> None:
    if problems:
        more = len(problems) - _MAX_ERRORS_SHOWN
        msg = "; ".join(problems[:_MAX_ERRORS_SHOWN])
        if more > 0:
            msg += "; ... and {} more".format(more)
        raise ValueError("invalid {}: {}".format(what, msg))


def _is_dim(x) -> bool:
    return _is_id(x) and 1 <= x <= _MAX_DIM


def _gt_structure_problems(gt: Dict[str, Any]) -> List[str]:
    """Types and ids of the GT's videos, categories and annotations (before anything is read)."""
    for key in ("videos", "categories", "annotations"):
        if not isinstance(gt[key], list):
            return ["'{}' must be a list, got {}".format(key, type(gt[key]).__name__)]
    problems: List[str] = []
    seen = set()
    for i, v in enumerate(gt["videos"]):
        where = "videos[{}]".format(i)
        if not isinstance(v, dict):
            problems.append("{}: must be an object".format(where))
            continue
        if not _is_id(v.get("id")) or v["id"] in seen:
            problems.append("{}: missing, bad or duplicate id {!r}".format(where, v.get("id")))
            continue
        seen.add(v["id"])
        for k in ("height", "width"):
            if not _is_dim(v.get(k)):
                problems.append("{} (id={}): bad {} {!r}".format(where, v["id"], k, v.get(k)))
        if "length" in v:
            if not (_is_id(v["length"]) and 1 <= v["length"] <= 2**20):
                problems.append("{} (id={}): bad length {!r}".format(where, v["id"], v["length"]))
        elif not isinstance(v.get("file_names"), list):
            problems.append("{} (id={}): no length and no file_names list".format(where, v["id"]))
    seen = set()
    for i, c in enumerate(gt["categories"]):
        if not isinstance(c, dict) or not _is_id(c.get("id")) or c["id"] in seen:
            problems.append("categories[{}]: not an object with a unique integer id".format(i))
            continue
        seen.add(c["id"])
    for i, ann in enumerate(gt["annotations"]):
        where = "annotations[{}]".format(i)
        if not isinstance(ann, dict):
            problems.append("{}: must be an object".format(where))
            continue
        for k in ("video_id", "category_id"):
            if not _is_id(ann.get(k)):
                problems.append("{}: bad {} {!r}".format(where, k, ann.get(k)))
        if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd"), float):
            problems.append("{}: iscrowd must be 0 or 1, got {!r}".format(where, ann["iscrowd"]))
        areas = ann.get("areas")
        if areas is not None and (
            not isinstance(areas, list)
            or not all(
                a is None
                or (isinstance(a, numbers.Real) and not isinstance(a, bool) and math.isfinite(a))
                for a in areas
            )
        ):
            problems.append("{}: 'areas' must be a list of numbers or nulls".format(where))
    return problems


def _parse_gt(gt: Dict[str, Any]):
    if not isinstance(gt, dict) or "videos" not in gt or "categories" not in gt:
        raise ValueError("ground truth must be a YTVIS dict with 'videos' and 'categories'")
    if "annotations" not in gt:
        raise ValueError(
            "ground truth has no 'annotations' (public val/test splits are scored only by the "
            "server); use check_results() to validate a submission"
        )
    _raise_problems("ground truth", _gt_structure_problems(gt))
    videos = {}
    for v in gt["videos"]:
        try:
            videos[v["id"]] = (int(v["height"]), int(v["width"]), _video_length(v))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError("GT video {!r} lacks id/height/width/length: {}".format(v, e)) from e
    cats = {c["id"]: c.get("name", str(c["id"])) for c in gt["categories"]}
    gts: Dict[Tuple[int, int], List[_Track]] = defaultdict(list)
    problems = []
    for i, ann in enumerate(gt["annotations"]):
        where = "annotations[{}] (id={!r}, video_id={!r})".format(
            i, ann.get("id"), ann.get("video_id")
        )
        vid, cat = ann.get("video_id"), ann.get("category_id")
        if vid not in videos:
            problems.append("{}: unknown video_id".format(where))
            continue
        if cat not in cats:
            problems.append("{}: unknown category_id {!r}".format(where, cat))
            continue
        h, w, length = videos[vid]
        segs = ann.get("segmentations")
        if not isinstance(segs, list) or len(segs) != length:
            problems.append(
                "{}: {} segmentations for a video of {} frames".format(
                    where, len(segs) if isinstance(segs, list) else "no", length
                )
            )
            continue
        frame_problems = segmentation_problems(
            segs, h, w, allow_uncompressed=True, allow_polygons=True
        )
        if frame_problems:
            problems.extend("{} frame {}: {}".format(where, f, m) for f, m in frame_problems)
            continue
        track = _make_track(segs, h, w, ann.get("areas"))
        track.iscrowd = bool(ann.get("iscrowd", 0))
        gts[(vid, cat)].append(track)
    _raise_problems("ground truth", problems)
    return videos, cats, gts


def _parse_results(gt: Dict[str, Any], results: Any, videos) -> Dict[Tuple[int, int], List[_Track]]:
    _raise_problems("results", check_results(gt, results, allow_uncompressed=True))
    dts: Dict[Tuple[int, int], List[_Track]] = defaultdict(list)
    for r in results:
        h, w, _ = videos[r["video_id"]]
        track = _make_track(r["segmentations"], h, w)
        track.score = float(r["score"])
        dts[(r["video_id"], r["category_id"])].append(track)
    for key, lst in dts.items():  # stable sort by score, at most MAX_DETS[-1]
        order = np.argsort([-d.score for d in lst], kind="mergesort")[: MAX_DETS[-1]]
        dts[key] = [lst[i] for i in order]
    return dts


# ------------------------------------------------------------------------------------ scoring
def video_ious(dts: Sequence[_Track], gts: Sequence[_Track]) -> np.ndarray:
    """(D, G) video IoUs: summed per-frame intersections over summed per-frame unions."""
    nd, ng = len(dts), len(gts)
    if nd == 0 or ng == 0:
        return np.zeros((nd, ng))
    dfa = np.stack([d.frame_areas for d in dts])
    gfa = np.stack([g.frame_areas for g in gts])
    dpres = np.array([[r is not None for r in d.rles] for d in dts])
    gpres = np.array([[r is not None for r in g.rles] for g in gts])
    inter = np.zeros((nd, ng))
    for f in np.flatnonzero(dpres.any(0) & gpres.any(0)):
        di, gi = np.flatnonzero(dpres[:, f]), np.flatnonzero(gpres[:, f])
        iou = np.asarray(
            mask_util.iou(
                [dts[i].rles[f] for i in di], [gts[j].rles[f] for j in gi], [0] * len(gi)
            ),
            dtype=np.float64,
        ).reshape(len(di), len(gi))
        a = dfa[di, f][:, None] + gfa[gi, f][None, :]
        inter[np.ix_(di, gi)] += np.rint(iou * a / (1.0 + iou))
    union = dfa.sum(1)[:, None] + gfa.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(ious, gt_ignore, gt_crowd, dt_area, area_rng):
    """Greedy COCO matching at every IoU threshold. Returns (dt_matched, dt_ignore), (T, D) bool."""
    nt, nd = len(IOU_THRESHOLDS), ious.shape[0]
    order = np.argsort(gt_ignore, kind="mergesort")  # non-ignored GTs first
    ious, gt_ignore, gt_crowd = ious[:, order], gt_ignore[order], gt_crowd[order]
    ng = len(gt_ignore)
    dt_matched = np.zeros((nt, nd), dtype=bool)
    dt_ignore = np.zeros((nt, nd), dtype=bool)
    if ng:
        thr = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
        taken = np.zeros((nt, ng), dtype=bool)
        for d in range(nd):
            avail = (~taken | gt_crowd[None, :]) & (ious[d][None, :] >= thr)
            regular = avail & ~gt_ignore[None, :]
            use = np.where(regular.any(1, keepdims=True), regular, avail)
            has = np.flatnonzero(use.any(1))
            if len(has) == 0:
                continue
            # best IoU; among equal IoUs the last GT (what the official loop does)
            score = np.where(use[has], ious[d][None, :], -1.0)
            m = ng - 1 - np.argmax(score[:, ::-1], axis=1)
            dt_matched[has, d] = True
            dt_ignore[has, d] = gt_ignore[m]
            taken[has, m] = True
    outside = (dt_area < area_rng[0]) | (dt_area > area_rng[1])
    dt_ignore |= ~dt_matched & outside[None, :]
    return dt_matched, dt_ignore


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
            for m, max_det in enumerate(MAX_DETS):
                scores = np.concatenate([e[0][:max_det] for e in E])
                inds = np.argsort(-scores, kind="mergesort")
                dtm = np.concatenate([e[1][:, :max_det] for e in E], axis=1)[:, inds]
                dtig = np.concatenate([e[2][:, :max_det] for e in E], axis=1)[:, inds]
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


def evaluate(gt: Dict[str, Any], results: List[Dict[str, Any]]) -> YTVISEvalResult:
    """YouTube-VIS metrics of ``results`` (official results format) against ``gt`` (YTVIS dict).

    GT segmentations may be compressed RLE, uncompressed RLE or polygons; results compressed RLE
    (str or bytes counts; uncompressed RLE is accepted too). Raises ``ValueError`` naming the
    entry and video for unknown video/category ids, wrong segmentation lengths, mask-size
    mismatches, malformed RLE, or a GT without annotations.
    """
    videos, cats, gts = _parse_gt(gt)
    dts = _parse_results(gt, results, videos)
    cat_ids = sorted(cats)
    vid_ids = sorted(videos)
    evals = [[[] for _ in AREA_RANGES] for _ in cat_ids]
    for k, cat in enumerate(cat_ids):
        for vid in vid_ids:
            g, d = gts.get((vid, cat), []), dts.get((vid, cat), [])
            if not g and not d:
                continue
            ious = video_ious(d, g)
            crowd = np.array([x.iscrowd for x in g], dtype=bool)
            g_area = np.array([x.area for x in g], dtype=np.float64)
            d_area = np.array([x.area for x in d], dtype=np.float64)
            scores = np.array([x.score for x in d], dtype=np.float64)
            for a, (_, rng) in enumerate(AREA_RANGES):
                g_ignore = crowd | (g_area < rng[0]) | (g_area > rng[1])
                dtm, dtig = _match(ious, g_ignore, crowd, d_area, rng)
                evals[k][a].append((scores, dtm, dtig, g_ignore))
    precision, recall = _accumulate(evals, len(cat_ids))
    per_cat = {}
    for k, cat in enumerate(cat_ids):
        v = _mean_defined(precision[:, :, k, 0, MAX_DETS.index(100)])
        per_cat[cat] = v if v > -1 else math.nan
    return YTVISEvalResult(
        stats=_stats(precision, recall),
        per_category_ap=per_cat,
        category_ids=cat_ids,
        category_names=dict(cats),
        precision=precision,
        recall=recall,
    )


def video_iou(
    det_segmentations: Sequence, gt_segmentations: Sequence, height: int, width: int
) -> float:
    """Video IoU of two per-frame segmentation lists (RLE/polygons/None) of one video."""
    if len(det_segmentations) != len(gt_segmentations):
        raise ValueError("segmentation lists differ in length")
    probs = segmentation_problems(det_segmentations, height, width, True, True)
    probs += segmentation_problems(gt_segmentations, height, width, True, True)
    _raise_problems("segmentations", ["frame {}: {}".format(f, m) for f, m in probs])
    d = _make_track(det_segmentations, height, width)
    g = _make_track(gt_segmentations, height, width)
    return float(video_ious([d], [g])[0, 0])
