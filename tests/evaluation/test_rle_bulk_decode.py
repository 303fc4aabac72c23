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


def test_bulk_decoder_matches_pycocotools():
    rng = np.random.default_rng(0)
    masks = _masks(rng)
    rng.shuffle(masks)
    strings = [mask_util.encode(np.asfortranarray(m))["counts"] for m in masks]
    assert max(map(len, strings)) > 1000 and min(map(len, strings)) <= 2
    lens = np.fromiter(map(len, strings), dtype=np.int64)
    dec = P._fast_strings(strings, lens)
    assert dec is not None
    cnt, first = dec
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
    assert P._fast_strings(strings, lens) is None  # the exact path decides and describes
    ok, _cnt, _sid = P.decode_rle_strings(strings)
    assert ok.tolist() == [True, exact_ok, True]


def test_bulk_decoder_negative_and_overflowing_counts():
    # counts 0, 0, 1, then counts[1] + (-1): a negative run length
    neg = b"001" + b"O"  # 'O' = 48 + 31: -1 -> counts[3] = counts[1] - 1 = -1
    big = b"0" + b"_____" + b"O" + b"0"  # 6 continuation characters: > 2**32 or negative
    for s in (neg, big):
        lens = np.array([len(s)], dtype=np.int64)
        assert P._fast_strings([s], lens) is None
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
    monkeypatch.setattr(P, "_BATCH_SEGMENTS", 3)  # several batches
    _, _, batched = P.parse(gt, None)
    monkeypatch.setattr(P, "_fast_tracks", lambda *a, **k: None)  # the exact path
    _, _, exact = P.parse(gt, None)
    for other in (batched, exact):
        assert len(fast.gt) == len(other.gt)
        for a, b in zip(fast.gt, other.gt, strict=True):
            assert a[:5] == b[:5]
            assert len(a[5]) == len(b[5])
            for (ra, pa), (rb, pb) in zip(a[5], b[5], strict=True):
                assert pa == pb and list(ra["size"]) == list(rb["size"])
                assert ra["counts"] == rb["counts"]
