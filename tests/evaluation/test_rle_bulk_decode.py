"""The evaluator's two decoders, through ``parse.parse``, ``decode_rle_strings`` and ``check_gt``:
compressed RLE strings of many masks must give pycocotools' run lengths exactly, and the tracks
that the fast path builds (valid files) must equal those of the exact path (files it declines).

Which path decoded a file shows in its tracks: the fast path keeps the present frames without
pixels (``seg_area`` 0), the exact path drops them."""

import numpy as np
import pycocotools.mask as mask_util
import pytest

from maskprop_d2.evaluation import parse as P
from maskprop_d2.evaluation.results_io import check_gt


def _runs(mask):
    """Column-major run lengths of an (h, w) mask, starting with background (pycocotools')."""
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.r_[0, change, flat.size]).tolist()
    return [0] + counts if flat[0] else counts


def _masks(rng):
    """Random masks of mixed sizes: empty, full, 1-pixel frames, single pixels in large frames
    (runs needing 4-5 characters), noise (many 1-character numbers), blocks and stripes."""
    out = [np.zeros((1, 1), np.uint8), np.ones((1, 1), np.uint8)]
    for h, w in ((1, 7), (7, 1), (3, 5), (40, 60), (300, 400), (1000, 1200), (2, 16384)):
        out.append(np.zeros((h, w), np.uint8))
        out.append(np.ones((h, w), np.uint8))
        one = np.zeros((h, w), np.uint8)
        one[rng.integers(h), rng.integers(w)] = 1
        out.append(one)
        out.append((rng.random((h, w)) < rng.uniform(0.05, 0.95)).astype(np.uint8))
        block = np.zeros((h, w), np.uint8)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        block[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = 1
        out.append(block)
        out.append(1 - block)
        stripes = np.zeros((h, w), np.uint8)
        stripes[:, :: int(rng.integers(1, 4))] = 1
        out.append(stripes)
    return out


# A valid compressed RLE of a 1x1 frame (one background run of 1) spelt in 9 characters: the
# fast path does not take numbers that long, so a file holding it is decoded by the exact path
# (the "exact path" below), which describes problems; everything else in the file is the same.
OVERLONG_1X1 = "QPPPPPPP0"


def _with_overlong(gt):
    """``gt`` plus a 1x1 video (the largest id) and a crowd annotation (last) spelt
    ``OVERLONG_1X1``: the tracks of ``gt``'s annotations keep their keys and ranks."""
    gt = dict(gt)
    vid = max(v["id"] for v in gt["videos"]) + 1
    gt["videos"] = gt["videos"] + [{"id": vid, "height": 1, "width": 1, "length": 1}]
    gt["annotations"] = gt["annotations"] + [
        {"id": 10**6, "video_id": vid, "category_id": gt["categories"][0]["id"], "iscrowd": 1,
         "segmentations": [{"size": [1, 1], "counts": OVERLONG_1X1}]}]  # fmt: skip
    return gt


def _fg_runs(m, offset=0):
    """Foreground runs (start, end) of an (h, w) mask, column-major, shifted by ``offset``."""
    counts = _runs(m)
    ends = np.cumsum(counts)
    return [(offset + int(e - c), offset + int(e)) for c, e in
            zip(counts[1::2], ends[1::2], strict=True) if c]  # fmt: skip


def test_overlong_strings_are_valid():
    ok, cnt, _sid = P.decode_rle_strings([OVERLONG_1X1])
    assert ok.tolist() == [True] and cnt.tolist() == [1]


@pytest.mark.parametrize("overlong", [False, True], ids=["fast", "exact"])
def test_bulk_decoder_matches_pycocotools(overlong):
    rng = np.random.default_rng(0)
    masks = _masks(rng)
    rng.shuffle(masks)
    strings = [mask_util.encode(np.asfortranarray(m))["counts"] for m in masks]
    assert max(map(len, strings)) > 1000 and min(map(len, strings)) <= 2
    for m, s in zip(masks, strings, strict=True):  # pycocotools decodes them to the same pixels
        assert np.array_equal(mask_util.decode({"size": list(m.shape), "counts": s}), m)
    # the run lengths, all strings at once
    ok, cnt, sid = P.decode_rle_strings([s.decode() for s in strings])
    assert ok.all()
    first = np.r_[np.searchsorted(sid, np.arange(len(strings))), len(cnt)]
    for k, m in enumerate(masks):
        assert cnt[first[k] : first[k + 1]].tolist() == _runs(m), k
    # a file of one-frame videos (bytes counts): each track's runs are the mask's
    pairs = list(enumerate(zip(masks, strings, strict=True), 1))
    gt = {"videos": [{"id": k, "height": m.shape[0], "width": m.shape[1], "length": 1}
                     for k, (m, _) in pairs],
          "categories": [{"id": 1}],
          "annotations": [{"id": k, "video_id": k, "category_id": 1,
                           "segmentations": [{"size": list(m.shape), "counts": s}]}
                          for k, (m, s) in pairs]}  # fmt: skip
    gt_probs, _, parsed = P.parse(_with_overlong(gt) if overlong else gt, None)
    assert gt_probs == []
    assert (parsed.gt.seg_area == 0).any() != overlong  # the path meant (see the docstring)
    for k, m in enumerate(masks):
        assert _pixels(parsed.gt, k) == _fg_runs(m), k


@pytest.mark.parametrize(
    "bad, exact_ok",
    [
        (b"", True),  # empty: no numbers (the size check then refuses it)
        (b"0a\x7f", False),  # a character outside '0'..'o'
        (b"1P", False),  # ends inside a number (continuation bit on the last character)
        (b"PPPPPPPP0", True),  # 0 in 9 characters: the exact path takes it, the fast one not
    ],
)
def test_bulk_decoder_refuses_unusual_strings(bad, exact_ok):
    good = mask_util.encode(np.asfortranarray(np.eye(5, dtype=np.uint8)))["counts"]
    ok, _cnt, _sid = P.decode_rle_strings([good, bad, good])
    assert ok.tolist() == [True, exact_ok, True]
    # in a file: the frame at fault, and why (malformed, or its 0 pixels)
    segs = [{"size": [5, 5], "counts": c.decode("latin-1")} for c in (good, bad, good)]
    gt = {"videos": [{"id": 1, "height": 5, "width": 5, "length": 3}], "categories": [{"id": 1}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": segs}]}
    why = "RLE covers 0 pixels != 5x5" if exact_ok else "malformed compressed RLE counts"
    assert check_gt(gt) == ["ground truth: annotations[0] (id=1, video_id=1) frame 1: " + why]


def test_bulk_decoder_negative_and_overflowing_counts():
    # counts 0, 0, 1, then counts[1] + (-1): a negative run length
    neg = b"001" + b"O"  # 'O' = 48 + 31: -1 -> counts[3] = counts[1] - 1 = -1
    big = b"0" + b"_____" + b"O" + b"0"  # 6 continuation characters: > 2**32 or negative
    for s in (neg, big):
        ok, _cnt, _sid = P.decode_rle_strings([s])
        assert not ok[0]
        gt = {"videos": [{"id": 1, "height": 2, "width": 2, "length": 1}],
              "categories": [{"id": 1}],
              "annotations": [{"id": 1, "video_id": 1, "category_id": 1,
                               "segmentations": [{"size": [2, 2], "counts": s.decode()}]}]}
        assert check_gt(gt) == ["ground truth: annotations[0] (id=1, video_id=1) frame 0: "
                                "malformed compressed RLE counts"]  # fmt: skip


def _gt(rng, num_videos=6):
    cats = [{"id": 1}, {"id": 2}]
    videos, anns = [], []
    for vid in range(1, num_videos + 1):
        h, w = [(1, 1), (1, 9), (6, 4), (30, 50), (90, 160), (7, 3)][vid % 6]
        length = int(rng.integers(1, 6))
        videos.append({"id": vid, "height": h, "width": w, "length": length})
        for _ in range(int(rng.integers(1, 4))):
            segs = []
            for _t in range(length):
                r = rng.random()
                if r < 0.2:
                    segs.append(None)
                    continue
                m = (rng.random((h, w)) < rng.uniform(0, 1)).astype(np.uint8)
                if r < 0.3:
                    m[:] = 1
                elif r < 0.4:
                    m[:] = 0
                if r < 0.65:
                    c = mask_util.encode(np.asfortranarray(m))["counts"].decode()
                    segs.append({"size": [h, w], "counts": c})
                else:
                    segs.append({"size": [h, w], "counts": _runs(m)})
            anns.append({"id": len(anns) + 1, "video_id": vid, "category_id": 1 + len(anns) % 2,
                         "segmentations": segs})  # fmt: skip
    return {"videos": videos, "categories": cats, "annotations": anns}


@pytest.mark.parametrize("seed", range(5))
def test_fast_tracks_equal_exact_path(seed):
    gt = _gt(np.random.default_rng(seed))
    _, _, fast = P.parse(gt, None)
    _, _, exact = P.parse(_with_overlong(gt), None)  # the same file, by the exact path
    a, b = fast.gt, exact.gt
    assert (a.seg_area == 0).any() and (b.seg_area > 0).all()  # each took its path
    assert len(b) == len(a) + 1  # the overlong annotation, last and without pixels
    for name in ("key", "video", "category", "extra", "area", "pix", "length", "hw"):
        assert np.array_equal(getattr(a, name), getattr(b, name)[:-1]), name
    for i in range(len(a)):  # the same pixels: non-empty runs, touching ones merged
        assert _pixels(a, i) == _pixels(b, i)
    # per frame: the same areas (the exact path keeps only frames with pixels) and extents that
    # hold every pixel
    for t in (a, b):
        pos = t.seg_area > 0
        key = list(zip(t.seg_track[pos].tolist(), t.seg_frame[pos].tolist(),
                       t.seg_area[pos].tolist(), strict=True))  # fmt: skip
        assert key == list(zip(b.seg_track.tolist(), b.seg_frame.tolist(), b.seg_area.tolist(),
                               strict=True))  # fmt: skip
        for j in np.flatnonzero(pos):
            i = t.seg_track[j]
            lo = t.seg_frame[j] * t.hw[i]
            px = [p for p in _pixels(t, i, merge=False) if lo <= p[0] < lo + t.hw[i]]
            assert t.seg_ext0[j] <= px[0][0] and px[-1][1] <= t.seg_ext1[j]


def _pixels(t, i, merge=True):
    """Runs of track i as (start, end) pairs: non-empty, touching ones merged."""
    out = []
    for s, e in zip(t.starts[t.r0[i] : t.r1[i]].tolist(), t.ends[t.r0[i] : t.r1[i]].tolist(),
                    strict=True):  # fmt: skip
        if e > s:
            if merge and out and out[-1][1] == s:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
    return out
