"""The evaluator's vectorised steps against direct references, through ``video_iou``,
``evaluate`` and ``check_gt``: video IoUs from the decoded runs against pixel counts, and the IoU
bound that skips pairs below 0.5. Three tests call internals, each saying why the public path
cannot reach its cases: IoUs in several coordinate chunks, the all-groups-at-once greedy matching
against the official per-detection loop, and the recall steps against ``np.searchsorted``."""

import numpy as np
import pycocotools.mask as mask_util
import pytest

from maskprop_d2.evaluation import parse as P
from maskprop_d2.evaluation import ytvis_eval as E
from maskprop_d2.evaluation.results_io import check_gt


def _runs(mask):
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.r_[0, change, flat.size]).tolist()
    return [0] + counts if flat[0] else counts


def _mask(rng, h, w, kind=None):
    kind = int(rng.integers(0, 7)) if kind is None else kind
    m = np.zeros((h, w), np.uint8)
    if kind == 1:
        m[:] = 1
    elif kind == 2:
        m[rng.integers(h), rng.integers(w)] = 1
    elif kind == 3:
        m = (rng.random((h, w)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
    elif kind == 4:  # pixels at the frame's end and start: runs touching across frames
        m[-1, -1] = m[0, 0] = 1
    elif kind >= 5:
        y, x = rng.integers(0, h), rng.integers(0, w)
        m[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = 1
    return m


def _encode(rng, m):
    h, w = m.shape
    r = rng.random()
    if r < 0.3:
        counts = _runs(m)
        if len(counts) >= 3 and rng.random() < 0.3:  # empty runs in the middle
            i = int(rng.integers(1, len(counts)))
            counts = counts[:i] + [0, 0] + counts[i:]
        return {"size": [h, w], "counts": counts}
    s = mask_util.encode(np.asfortranarray(m))["counts"]
    return {"size": [h, w], "counts": s if r < 0.4 else s.decode()}


def _tracks(seed):
    """Random tracks (GT annotations, mixed formats) of a few videos and their pixel masks."""
    rng = np.random.default_rng(seed)
    videos, anns, masks = [], [], []
    for vid in range(1, 5):
        h, w = [(1, 1), (3, 5), (9, 4), (20, 30)][vid - 1]
        length = int(rng.integers(1, 6))
        videos.append({"id": vid, "height": h, "width": w, "length": length})
        base = [_mask(rng, h, w, kind=5) for _ in range(length)]  # a block
        for _ in range(int(rng.integers(2, 6))):
            frames = []
            for t in range(length):
                if rng.random() < 0.2:
                    frames.append(None)
                elif rng.random() < 0.5:  # overlapping the others: IoUs of every size
                    noise = (rng.random((h, w)) < rng.uniform(0, 0.1)).astype(np.uint8)
                    frames.append(base[t] ^ noise)
                else:
                    frames.append(_mask(rng, h, w))
            segs = [None if m is None else _encode(rng, m) for m in frames]
            anns.append({"id": len(anns) + 1, "video_id": vid, "category_id": 1,
                         "segmentations": segs})  # fmt: skip
            masks.append(np.stack([np.zeros((h, w), np.uint8) if m is None else m
                                   for m in frames]))  # fmt: skip
    gt = {"videos": videos, "categories": [{"id": 1}], "annotations": anns}
    return gt, masks


def _same_video_pairs(gt):
    """Every (i, j) of annotations of the same video."""
    vid = np.array([a["video_id"] for a in gt["annotations"]])
    i, j = np.nonzero(vid[:, None] == vid[None, :])
    return i, j


def _reference(masks, i, j):
    out = []
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        inter = np.logical_and(masks[a], masks[b]).sum()
        union = np.logical_or(masks[a], masks[b]).sum()
        out.append(inter / union if union else 0.0)
    return np.array(out)


SEEDS = (0, 1, 2, 7)  # sets with IoUs of every size (0, below 0.5, between 0.5 and 1, 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_video_ious_equal_pixel_counts(seed):
    gt, masks = _tracks(seed)
    i, j = _same_video_pairs(gt)
    anns, size = gt["annotations"], {v["id"]: (v["height"], v["width"]) for v in gt["videos"]}
    ious = [E.video_iou(anns[a]["segmentations"], anns[b]["segmentations"],
                        *size[anns[a]["video_id"]]) for a, b in zip(i, j, strict=True)]  # fmt: skip
    ref = _reference(masks, i, j)
    assert np.array_equal(ious, ref)  # exact: integer counts, one division
    assert ref.min() == 0 and ((ref > 0.5) & (ref < 1)).any()


# A valid compressed RLE of a 1x1 frame spelt in 9 characters: the fast decoder declines the file
# that holds it, the exact one decodes it (see test_rle_bulk_decode.py).
OVERLONG_1X1 = {"size": [1, 1], "counts": "QPPPPPPP0"}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
def test_one_pair_scores_the_thresholds_its_iou_reaches(seed, exact):
    """One GT track and one detection: AP is the fraction of the IoU thresholds that their video
    IoU reaches. Scoring skips the pairs whose IoU bounds stay below 0.5; a pair skipped wrongly
    would score 0. With ``exact``, a 1x1 video whose GT (a crowd) and detection are of a second
    category, spelt ``OVERLONG_1X1``, sends both files through the exact decoder."""
    gt, masks = _tracks(seed)
    i, j = _same_video_pairs(gt)
    ref = _reference(masks, i, j)
    anns, videos = gt["annotations"], {v["id"]: v for v in gt["videos"]}
    for a, b, iou in zip(i.tolist(), j.tolist(), ref.tolist(), strict=True):
        vid = anns[a]["video_id"]
        one = {"videos": [videos[vid]], "categories": [{"id": 1}, {"id": 2}],
               "annotations": [anns[a]]}  # fmt: skip
        res = [{"video_id": vid, "category_id": 1, "score": 1.0,
                "segmentations": anns[b]["segmentations"]}]  # fmt: skip
        if exact:
            one["videos"] = one["videos"] + [{"id": 99, "height": 1, "width": 1, "length": 1}]
            one["annotations"] = one["annotations"] + [
                {"id": 99, "video_id": 99, "category_id": 2, "iscrowd": 1,
                 "segmentations": [OVERLONG_1X1]}]  # fmt: skip
            res.append({"video_id": 99, "category_id": 2, "score": 0.5,
                        "segmentations": [OVERLONG_1X1]})  # fmt: skip
        ap = E.evaluate(one, res).stats[0]
        expected = np.mean(np.minimum(E.IOU_THRESHOLDS, 1 - 1e-10) <= iou)
        assert ap == pytest.approx(expected, abs=1e-12), (a, b, iou)
    assert (ref > 0).any() and (ref < 0.5).any() and (ref >= 0.5).any()


def test_intersections_in_several_chunks_of_coordinates(monkeypatch):
    """Internal (``_pair_ious``, ``_EXACT_SPAN``): the GT tracks are intersected in chunks of less
    than 2**52 pixels (exact in float64); the public path reaches a second chunk only with more
    than 2**52 pixels of GT tracks (16 videos of 2**20 frames of 2**14 x 2**14), so the chunk
    size is lowered here."""
    gt, masks = _tracks(SEEDS[0])
    _, _, parsed = P.parse(gt, None)
    tracks = parsed.gt
    i, j = _same_video_pairs(gt)
    ref = _reference(masks, i, j)
    assert np.array_equal(E._pair_ious(tracks, tracks, i, j), ref)
    monkeypatch.setattr(E, "_EXACT_SPAN", 40)
    assert np.array_equal(E._pair_ious(tracks, tracks, i, j), ref)


def _official_match(ious, ignore, crowd):
    """The official evaluateVid loop for one group (GTs sorted by ignore flag, stable)."""
    order = np.argsort(ignore, kind="mergesort")
    ious, ignore, crowd = ious[:, order], ignore[order], crowd[order]
    nt, nd, ng = len(E.IOU_THRESHOLDS), ious.shape[0], ious.shape[1]
    dtm = np.zeros((nt, nd), dtype=bool)
    dtig = np.zeros((nt, nd), dtype=bool)
    gtm = np.zeros((nt, ng), dtype=bool)
    for t, thr in enumerate(E.IOU_THRESHOLDS):
        for d in range(nd):
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(ng):
                if gtm[t, g] and not crowd[g]:
                    continue
                if m > -1 and not ignore[m] and ignore[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m == -1:
                continue
            dtig[t, d] = ignore[m]
            dtm[t, d] = True
            gtm[t, m] = True
    return dtm, dtig


@pytest.mark.parametrize("seed", range(3))
def test_matching_of_all_groups_equals_the_official_loop(seed):
    """Internal (``_match``): any IoU matrix, with ties at and between the thresholds, in 30
    groups at once. Masks cannot give an arbitrary IoU matrix (the IoUs of one detection with
    several GTs constrain each other), so the public path cannot reach these cases;
    test_ytvis_eval.py's brute-force comparison covers the path from masks."""
    rng = np.random.default_rng(seed)
    levels = np.array([0.0, 0.3, 0.5, 0.55, 0.6, 0.75, 0.75, 0.9, 0.95, 1.0])  # ties on purpose
    n_gt = rng.integers(1, 40, size=30)  # several widths (powers of two)
    n_dt = rng.integers(1, 25, size=30)
    first_gt = np.cumsum(n_gt) - n_gt
    first_dt = np.cumsum(n_dt) - n_dt
    pair0 = np.cumsum(n_gt * n_dt) - n_gt * n_dt
    ious = rng.choice(levels, size=int((n_gt * n_dt).sum()))
    crowd = rng.random(int(n_gt.sum())) < 0.2
    ignore = crowd[None, :] | (rng.random((4, int(n_gt.sum()))) < 0.3)
    dtm, dig = E._match(ious, pair0, n_gt, n_dt, first_dt, first_gt, ignore, crowd,
                        int(n_dt.sum()))  # fmt: skip
    for k in range(len(n_gt)):
        g = slice(first_gt[k], first_gt[k] + n_gt[k])
        d = slice(first_dt[k], first_dt[k] + n_dt[k])
        iou = ious[pair0[k] : pair0[k] + n_gt[k] * n_dt[k]].reshape(n_dt[k], n_gt[k])
        for a in range(4):
            ref_m, ref_ig = _official_match(iou, ignore[a, g], crowd[g])
            assert np.array_equal(dtm[a, :, d], ref_m)
            assert np.array_equal(dig[a, :, d] & dtm[a, :, d], ref_ig)
    assert dtm.any() and (~dtm).any() and dig.any()


def test_recall_steps_equal_searchsorted():
    """Internal (``_recall_steps``): every GT count up to 3,000 and a few up to 100,003; through
    the public path each count would be a file of as many GT tracks."""
    npig = np.r_[np.arange(1, 3001), [9999, 65536, 100003]]
    steps = E._recall_steps(npig)
    for n, row in zip(npig.tolist(), steps, strict=True):
        recall = np.arange(n + 2) / np.float64(n)
        assert np.array_equal(row, np.searchsorted(recall, E.RECALL_THRESHOLDS, side="left")), n


def test_bool_count_lists_take_the_exact_path():
    """Counts lists of bools: not ints (the exact path's message), although the fast path's
    array conversion would take them."""
    m = np.zeros((2, 2), np.uint8)
    m[0, 0] = 1
    gt = {
        "videos": [{"id": 1, "height": 1, "width": 2, "length": 1}],
        "categories": [{"id": 1}],
        "annotations": [{"id": 1, "video_id": 1, "category_id": 1,
                         "segmentations": [{"size": [1, 2], "counts": [True, True]}]}],
    }  # fmt: skip
    assert check_gt(gt) == ["ground truth: annotations[0] (id=1, video_id=1) frame 0: RLE counts "
                            "must be non-negative ints"]  # fmt: skip


def test_ids_beyond_int64():
    """Ids are Python ints of any size: the same metrics as with small ids."""
    m = np.zeros((8, 8), np.uint8)
    m[2:6, 2:6] = 1
    rle = mask_util.encode(np.asfortranarray(m))
    seg = {"size": [8, 8], "counts": rle["counts"].decode()}

    def case(vid, cat):
        gt = {"videos": [{"id": vid, "height": 8, "width": 8, "length": 2}],
              "categories": [{"id": cat}, {"id": 5}],
              "annotations": [{"id": 1, "video_id": vid, "category_id": cat,
                               "segmentations": [seg, None]}]}  # fmt: skip
        res = [{"video_id": vid, "category_id": cat, "score": 0.5, "segmentations": [seg, seg]},
               {"video_id": vid, "category_id": 5, "score": 0.9, "segmentations": [seg, None]}]
        return E.evaluate(gt, res)

    small, big = case(1, 2), case(2**70, -(2**70))
    assert np.array_equal(small.stats, big.stats) and small.stats[0] > 0
