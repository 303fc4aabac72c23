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
the GT and the results is decoded by vectorised numpy passes over all entries at once into the
foreground runs of every track in *video-mask coordinates* (its frames' pixels end to end). All the
work after that is vectorised over every (video, category) group at once:

* IoUs: the exact intersection of a detection and a GT is the sum, over the detection's runs, of
  the GT's coverage (pixels before a point, piecewise linear in the run bounds) at the run's end
  less that at its start, one ``np.interp`` call for all pairs (integers, exact in float64); the
  IoU is then computed as ``I / (a + b - I)``, as the official code does. Only pairs whose IoU can
  reach 0.5 are intersected (a bound from the per-frame areas and pixel extents); the others can
  match at no threshold and get 0;
* matching: detection r of every group against its GTs at once, for all thresholds and area
  ranges (``_match``);
* accumulation: per category and maxDets, all area ranges and thresholds at once, the precision
  at each recall point read at the position of the true positive that reaches it
  (``_accumulate``).
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .parse import Tracks, parse

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


_THR = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
_AREA_LO = np.array([rng[0] for _, rng in AREA_RANGES])[:, None]
_AREA_HI = np.array([rng[1] for _, rng in AREA_RANGES])[:, None]
_EXACT_SPAN = 2**52  # coordinates below this are exact in float64 (np.interp)


def _first_seg(tr: Tracks) -> np.ndarray:
    """Index of each track's first segmentation, and the total at the end (n + 1,)."""
    return np.searchsorted(tr.seg_track, np.arange(len(tr) + 1))


def _intersection_bounds(dt: Tracks, gt: Tracks, pd, pg) -> np.ndarray:
    """Upper bounds of the intersections (pixels) of the pairs (dt track pd[i], gt track pg[i]):
    over the frames where both have a segmentation, the smallest of the two areas and of the
    overlap of their extents."""
    fd = _first_seg(dt)
    n_seg = fd[pd + 1] - fd[pd]
    rep = np.repeat(np.arange(len(pd)), n_seg)
    sd = np.arange(len(rep)) - np.repeat(np.cumsum(n_seg) - n_seg - fd[pd], n_seg)
    # the GT's segmentation of the same frame, from a dense (track, frame) table
    table = np.full(int(gt.length.sum()), -1, dtype=np.int64)
    row = np.cumsum(gt.length) - gt.length
    table[row[gt.seg_track] + gt.seg_frame] = np.arange(len(gt.seg_track))
    sg = table[row[pg[rep]] + dt.seg_frame[sd]]
    both = sg >= 0
    rep, sd, sg = rep[both], sd[both], sg[both]
    overlap = np.minimum(dt.seg_ext1[sd], gt.seg_ext1[sg]) - np.maximum(dt.seg_ext0[sd],
                                                                         gt.seg_ext0[sg])
    bound = np.minimum(np.minimum(dt.seg_area[sd], gt.seg_area[sg]), np.maximum(overlap, 0))
    return np.bincount(rep, weights=bound, minlength=len(pd))


def _intersections(dt: Tracks, gt: Tracks, pd, pg) -> np.ndarray:
    """Exact intersections (pixels, float) of the pairs (dt track pd[i], gt track pg[i]).

    The GT tracks are laid end to end (each at a base offset, one pixel apart); their coverage
    C(x), the number of GT pixels before x, is piecewise linear with the run starts and ends as
    knots, so that ``np.interp`` evaluates it exactly (integers below 2**52) at the starts and
    ends of every detection run moved to its GT's base; a pair's intersection is the sum over the
    detection's runs of C(end) - C(start).
    """
    out = np.zeros(len(pd))
    ug, inv = np.unique(pg, return_inverse=True)
    span = gt.length[ug] * gt.hw[ug] + 1
    chunks, first, total = [], 0, 0  # GT tracks spanning < 2**52 pixels (exact floats) at once
    for i, s in enumerate(span.tolist()):
        if total + s > _EXACT_SPAN and i > first:
            chunks.append((first, i))
            first, total = i, 0
        total += s
    chunks.append((first, len(ug)))
    g_r0, g_r1 = gt.r0.tolist(), gt.r1.tolist()
    d_r0, d_r1 = dt.r0.tolist(), dt.r1.tolist()
    for a, b in chunks:
        base = (np.cumsum(span[a:b]) - span[a:b]).tolist()
        knots = []
        for col in (gt.starts, gt.ends):
            tracks = zip(ug[a:b].tolist(), base, strict=True)
            knots.append(np.concatenate([col[g_r0[g] : g_r1[g]] + s for g, s in tracks]))
        xp = np.empty(2 * len(knots[0]))
        xp[0::2], xp[1::2] = knots
        run_len = knots[1] - knots[0]
        fp = np.empty_like(xp)
        fp[1::2] = np.cumsum(run_len)
        fp[0::2] = fp[1::2] - run_len
        sel = np.flatnonzero((inv >= a) & (inv < b))
        runs = list(zip(pd[sel].tolist(), inv[sel].tolist(), strict=True))
        cov = [np.interp(np.concatenate([col[d_r0[d] : d_r1[d]] + base[i - a] for d, i in runs]),
                         xp, fp) for col in (dt.starts, dt.ends)]  # fmt: skip
        n_run = (dt.r1 - dt.r0)[pd[sel]]
        out[sel] = np.add.reduceat(cov[1] - cov[0], np.cumsum(n_run) - n_run)
    return out


def _pair_ious(dt: Tracks, gt: Tracks, pd, pg, skip_below: Optional[float] = None) -> np.ndarray:
    """Video IoUs of the pairs (dt track pd[i], gt track pg[i]), each of one video: the exact
    intersections over the union (0 when that is empty). With ``skip_below``, pairs whose IoU
    cannot reach it (bounded from per-frame areas and extents) are not intersected: 0."""
    pd, pg = np.asarray(pd, dtype=np.int64), np.asarray(pg, dtype=np.int64)
    a, b = dt.pix[pd], gt.pix[pg]
    todo = (a > 0) & (b > 0)
    if skip_below is not None and len(pd):
        bound = _intersection_bounds(dt, gt, pd, pg)
        # I / (a + b - I) grows with I; a margin keeps float rounding on the safe side
        todo &= bound * (1 + skip_below) >= skip_below * (a + b) * (1 - 1e-9)
    inter = np.zeros(len(pd))
    sel = np.flatnonzero(todo)
    if len(sel):
        inter[sel] = _intersections(dt, gt, pd[sel], pg[sel])
    union = a + b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(ious, pair0, n_gt, n_dt, first_dt, first_gt, gt_ignore, gt_crowd, num_dt):
    """Greedy COCO matching of all (video, category) groups at every IoU threshold and area range.

    Group k has the detections first_dt[k] + r (r < n_dt[k], by score) and the GTs first_gt[k] +
    j (j < n_gt[k]); the IoU of detection r and GT j is ious[pair0[k] + r * n_gt[k] + j].
    gt_ignore: (A, GTs); gt_crowd: (GTs,). Detection r of every group is matched at once, for all
    thresholds and area ranges: among the available GTs (not taken, or crowd) with an IoU >= the
    threshold, the regular ones (not ignored) if any, else the ignored ones; the best IoU, and
    among equal IoUs the last GT (what the official loop over GTs sorted by ignore flag does).
    Groups are padded to the next power of two of their GT count.
    Returns (matched (A, T, num_dt), ignore flag of the matched GT (A, T, num_dt)).
    """
    na, nt = gt_ignore.shape[0], len(IOU_THRESHOLDS)
    matched = np.zeros((na, nt, num_dt), dtype=bool)
    matched_ig = np.zeros((na, nt, num_dt), dtype=bool)
    if len(n_gt) == 0:
        return matched, matched_ig
    width = np.left_shift(1, np.ceil(np.log2(n_gt)).astype(np.int64))
    for w in np.unique(width).tolist():
        ks = np.flatnonzero(width == w)
        ks = ks[np.argsort(-n_dt[ks], kind="stable")]  # the groups still matching: a prefix
        ng, nd = n_gt[ks], n_dt[ks]
        j = np.arange(w)
        valid = j < ng[:, None]
        g = np.where(valid, first_gt[ks][:, None] + j, 0)
        ig = gt_ignore[:, g] & valid  # (A, groups, w)
        free_always = gt_crowd[g] & valid
        taken = np.zeros((na, len(ks), nt, w), dtype=bool)
        for r in range(int(nd[0])):
            k = int(np.count_nonzero(nd > r))
            at = np.where(valid[:k], (pair0[ks[:k]] + r * ng[:k])[:, None] + j, 0)
            iou = np.where(valid[:k], ious[at], -1.0)  # (groups, w)
            ok = iou[:, None, :] >= _THR[:, None]  # (groups, T, w)
            if not ok.any():
                continue
            avail = ok & (~taken[:, :k] | free_always[:k, None, :])  # (A, groups, T, w)
            regular = avail & ~ig[:, :k, None, :]
            use = np.where(regular.any(-1, keepdims=True), regular, avail)
            score = np.where(use, iou[:, None, :], -1.0)
            best = w - 1 - np.argmax(score[..., ::-1], axis=-1)  # (A, groups, T)
            ai, ki, ti = np.nonzero(use.any(-1))
            m = best[ai, ki, ti]
            taken[ai, ki, ti, m] = True
            d = first_dt[ks[ki]] + r
            matched[ai, ti, d] = True
            matched_ig[ai, ti, d] = ig[ai, ki, m]
    return matched, matched_ig


def _recall_steps(npig: np.ndarray) -> np.ndarray:
    """(A, R) smallest true-positive counts tp with tp / npig[a] >= RECALL_THRESHOLDS[r] in
    float64 (the same division as the recall), so that "recall < threshold" is "tp < step"."""
    n = npig[:, None].astype(np.float64)
    step = np.ceil(RECALL_THRESHOLDS[None, :] * n)
    for _ in range(2):  # the product and the division may round differently: one step each way
        step = np.where((step > 0) & ((step - 1) / n >= RECALL_THRESHOLDS), step - 1, step)
        step = np.where(step / n < RECALL_THRESHOLDS, step + 1, step)
    return step.astype(np.int64)


def _accumulate(dt_cat, dt_rank, scores, dtm, dtig, npig, num_cats):
    """COCO accumulation. Detections (kept, ordered by category, video, score): category, rank in
    its group, score; dtm / dtig (A, T, D); npig (K, A) regular GTs per category and area range.

    Per category and maxDets, the detections sorted by score (stable); cumulative true and false
    positives per area range and threshold, precision envelope, and the precision at each recall
    threshold: at the first detection whose recall reaches it, i.e. the ``step``-th true positive
    (``np.searchsorted(recall, thresholds, "left")`` of the official code, for all rows at once).
    """
    nt, nr, na, nm = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((nt, nr, num_cats, na, nm))
    recall = -np.ones((nt, num_cats, na, nm))
    bounds = np.searchsorted(dt_cat, np.arange(num_cats + 1))
    for k in range(num_cats):
        areas = np.flatnonzero(npig[k] > 0)
        if len(areas) == 0:
            continue
        steps = _recall_steps(npig[k, areas])  # (A', R)
        lo, hi = bounds[k], bounds[k + 1]
        for m, max_det in enumerate(MAX_DETS):
            sel = lo + np.flatnonzero(dt_rank[lo:hi] < max_det)
            inds = sel[np.argsort(-scores[sel], kind="mergesort")]
            nd = len(inds)
            if nd == 0:
                recall[:, k, areas, m] = 0.0
                precision[:, :, k, areas, m] = 0.0
                continue
            dtm_k = dtm[areas][:, :, inds]  # (A', T, nd)
            dtig_k = dtig[areas][:, :, inds]
            tps = dtm_k & ~dtig_k
            tp = np.cumsum(tps, axis=2)
            fp = np.cumsum(~dtm_k & ~dtig_k, axis=2).astype(np.float64)
            tpf = tp.astype(np.float64)
            rc = tpf / npig[k, areas][:, None, None]
            denom = tpf + fp
            pr = np.where(denom > 0, tpf / np.where(denom > 0, denom, 1.0), 0.0)
            pr = np.maximum.accumulate(pr[..., ::-1], axis=2)[..., ::-1]  # precision envelope
            recall[:, k, areas, m] = rc[:, :, -1].T
            # position of the step-th true positive of each row (0 for step 0, nd past the last)
            total = tp[:, :, -1]  # (A', T)
            first = np.cumsum(total).reshape(total.shape) - total
            pos = np.nonzero(tps.reshape(-1, nd))[1]
            st = steps[:, None, :]  # (A', 1, R)
            reach = (st >= 1) & (st <= total[:, :, None])
            at = np.where(reach, first[:, :, None] + st - 1, 0)
            idx = np.where(reach, pos[np.minimum(at, max(len(pos) - 1, 0))] if len(pos) else 0,
                           np.where(st <= 0, 0, nd))  # fmt: skip
            q = np.take_along_axis(pr, np.minimum(idx, nd - 1), axis=2)  # (A', T, R)
            precision[:, :, k, areas, m] = np.where(idx < nd, q, 0.0).transpose(1, 2, 0)
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
    t1 = time.process_time()
    G, D = parsed.gt, parsed.dt
    cat_ids = sorted(parsed.cats)
    num_cats = len(cat_ids)
    nv = len(parsed.videos)

    def group_of(tr):  # (category, video) groups in the official order: category, then video
        return tr.category * nv + tr.video

    # GTs by group (input order within); detections by group, then score (stable), at most
    # MAX_DETS[-1] per group
    gk = group_of(G)
    go = np.argsort(gk, kind="stable")
    gk = gk[go]
    dk = group_of(D)
    do = np.argsort(-D.extra, kind="stable")
    do = do[np.argsort(dk[do], kind="stable")]
    dk = dk[do]
    rank = np.arange(len(dk)) - np.searchsorted(dk, dk)
    keep = rank < MAX_DETS[-1]
    do, dk, rank = do[keep], dk[keep], rank[keep]
    groups = np.union1d(gk, dk)
    first_gt = np.searchsorted(gk, groups)
    n_gt = np.searchsorted(gk, groups, side="right") - first_gt
    first_dt = np.searchsorted(dk, groups)
    n_dt = np.searchsorted(dk, groups, side="right") - first_dt
    both = np.flatnonzero((n_gt > 0) & (n_dt > 0))
    first_gt, n_gt, first_dt, n_dt = first_gt[both], n_gt[both], first_dt[both], n_dt[both]
    # pairs: per group, detection-major
    n_pair = n_gt * n_dt
    pair0 = np.cumsum(n_pair) - n_pair
    grp = np.repeat(np.arange(len(both)), n_pair)
    local = np.arange(int(n_pair.sum())) - pair0[grp]
    pair_dt = first_dt[grp] + local // n_gt[grp]
    pair_gt = first_gt[grp] + local % n_gt[grp]
    ta = time.process_time()
    ious = _pair_ious(D, G, do[pair_dt], go[pair_gt], skip_below=float(IOU_THRESHOLDS[0]))
    t_iou = time.process_time() - ta
    crowd = G.extra[go]
    g_area = G.area[go]
    gt_ignore = crowd | (g_area < _AREA_LO) | (g_area > _AREA_HI)  # (area range, GT)
    d_area = D.area[do]
    outside = (d_area < _AREA_LO) | (d_area > _AREA_HI)  # (area range, detection)
    dtm, matched_ig = _match(ious, pair0, n_gt, n_dt, first_dt, first_gt, gt_ignore, crowd, len(do))
    dtig = (dtm & matched_ig) | (~dtm & outside[:, None, :])
    g_cat = gk // nv
    npig = np.stack([np.bincount(g_cat, weights=~ig, minlength=num_cats) for ig in gt_ignore], 1)
    precision, recall = _accumulate(dk // nv, rank, D.extra[do], dtm, dtig, npig, num_cats)
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
    return float(_pair_ious(parsed.gt, parsed.gt, [0], [1])[0])
