"""The evaluator's fast path (``parse._fast_strings`` / ``_fast_tracks``): compressed RLE strings of
many masks decoded in one numpy pass must give pycocotools' run lengths exactly, and the tracks it
builds must equal those of the exact (per-problem) path."""

import numpy as np
import pycocotools.mask as mask_util
import pytest

from maskprop_d2.evaluation import parse as P


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
    for h, w in ((1, 7), (7, 1), (3, 5), (40, 60), (300, 400), (1000, 1200), (2, 70000)):
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


def _unpad(even, odd, pairs, padded):
    """The run lengths of every string (the two columns interleaved, padding 0s dropped) and the
    index of each string's first one."""
    cnt = np.empty(2 * len(even), dtype=np.int64)
    cnt[0::2], cnt[1::2] = even, odd
    end = 2 * np.cumsum(pairs)
    keep = np.ones(len(cnt), dtype=bool)
    keep[end[padded] - 1] = False
    nums = 2 * pairs - padded
    return cnt[keep], np.cumsum(nums) - nums


def test_bulk_decoder_matches_pycocotools():
    rng = np.random.default_rng(0)
    masks = _masks(rng)
    rng.shuffle(masks)
    strings = [mask_util.encode(np.asfortranarray(m))["counts"] for m in masks]
    assert max(map(len, strings)) > 1000 and min(map(len, strings)) <= 2
    lens = np.fromiter(map(len, strings), dtype=np.int64)
    dec = P._fast_strings(b"".join(strings), lens)
    assert dec is not None
    cnt, first = _unpad(*dec)
    bounds = np.r_[first, len(cnt)]
    for k, (m, s) in enumerate(zip(masks, strings, strict=True)):
        got = cnt[bounds[k] : bounds[k + 1]].tolist()
        assert got == _runs(m), k
        # pycocotools decodes the same string to the same pixels
        back = mask_util.decode({"size": list(m.shape), "counts": s})
        assert np.array_equal(back, m)
    # the exact path agrees
    ok, cnt2, sid = P.decode_rle_strings([s.decode() for s in strings])
    assert ok.all() and np.array_equal(cnt, cnt2)
    assert np.array_equal(first, np.searchsorted(sid, np.arange(len(strings))))


@pytest.mark.parametrize(
    "bad, exact_ok",
    [
        (b"", True),  # empty: no numbers (the size check then refuses it)
        (b"0a\x7f", False),  # a character outside '0'..'o'
        (b"1P", False),  # ends inside a number (continuation bit on the last character)
        (b"PPPPPPPP0", True),  # 0 in 9 characters: the exact path takes it, the fast one not
    ],
)
def test_bulk_decoder_gives_up_on_unusual_strings(bad, exact_ok):
    good = mask_util.encode(np.asfortranarray(np.eye(5, dtype=np.uint8)))["counts"]
    strings = [good, bad, good]
    lens = np.fromiter(map(len, strings), dtype=np.int64)
    assert P._fast_strings(b"".join(strings), lens) is None  # the exact path decides, describes
    ok, _cnt, _sid = P.decode_rle_strings(strings)
    assert ok.tolist() == [True, exact_ok, True]


def test_bulk_decoder_negative_and_overflowing_counts():
    # counts 0, 0, 1, then counts[1] + (-1): a negative run length
    neg = b"001" + b"O"  # 'O' = 48 + 31: -1 -> counts[3] = counts[1] - 1 = -1
    big = b"0" + b"_____" + b"O" + b"0"  # 6 continuation characters: > 2**32 or negative
    for s in (neg, big):
        lens = np.array([len(s)], dtype=np.int64)
        assert P._fast_strings(s, lens) is None
        ok, _cnt, _sid = P.decode_rle_strings([s])
        assert not ok[0]


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
def test_fast_tracks_equal_exact_path(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    gt = _gt(rng)
    orig, seen = P._fast_tracks, []
    monkeypatch.setattr(P, "_fast_tracks", lambda *a, **k: seen.append(orig(*a, **k)) or seen[-1])
    _, _, fast = P.parse(gt, None)
    assert seen[0] is not None  # the fast path took it
    monkeypatch.setattr(P, "_fast_tracks", lambda *a, **k: None)  # the exact path
    _, _, exact = P.parse(gt, None)
    a, b = fast.gt, exact.gt
    for name in ("key", "video", "category", "extra", "area", "pix", "length", "hw"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
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
