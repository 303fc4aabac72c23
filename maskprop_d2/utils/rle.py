"""COCO run-length encoding of masks (numpy and pycocotools only, no torch).

The YouTube-VIS formats store one segmentation per frame: a compressed RLE
``{"size": [H, W], "counts": str}``, an uncompressed RLE (``counts`` a list of ints), a polygon
list, or ``null`` where the object is absent.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

__all__ = ["encode_mask", "encode_masks", "decode_segmentation", "rle_totals"]

_MAX_CHUNKS = 12  # 5 bits per chunk: 60 bits is more than any valid run length needs


def encode_masks(masks: np.ndarray) -> List[Dict[str, Any]]:
    """(N, H, W) binary masks -> N compressed RLEs ``{"size": [H, W], "counts": str}``
    (JSON-ready), in one pycocotools call."""
    masks = np.asarray(masks)
    if len(masks) == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
        r["size"] = [int(s) for s in r["size"]]
    return rles


def encode_mask(mask: np.ndarray) -> Dict[str, Any]:
    """Binary (H, W) mask -> compressed RLE ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    rle["size"] = [int(s) for s in rle["size"]]
    return rle


def decode_segmentation(seg: Optional[Any], height: int, width: int) -> np.ndarray:
    """Decode an RLE (compressed or uncompressed counts), a polygon list or None (absent) to a
    (H, W) uint8 mask."""
    if seg is None:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(seg, dict):
        if list(seg["size"]) != [height, width]:
            raise ValueError(
                "RLE of size {} does not match the frame size {}".format(
                    list(seg["size"]), [height, width]
                )
            )
        rle = mask_util.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else seg
    elif isinstance(seg, (list, tuple)):
        polys = [np.asarray(p, dtype=np.float64).ravel().tolist() for p in seg]
        polys = [p for p in polys if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), dtype=np.uint8)
        rle = mask_util.merge(mask_util.frPyObjects(polys, height, width))
    else:
        raise TypeError("unsupported segmentation type {}".format(type(seg)))
    return mask_util.decode(rle).astype(np.uint8, copy=False)


def rle_totals(counts: Sequence) -> Tuple[np.ndarray, np.ndarray]:
    """Decode compressed RLE count strings (str/bytes) without touching pixels, all at once.

    Returns ``(ok, total)``: ok[i] is False when string i is malformed (bad characters, a truncated
    number, an overflowing or negative run length); total[i] is the sum of its run lengths, which a
    well-formed mask of size (h, w) has equal to h * w. Vectorised over all strings (numpy).
    """
    n = len(counts)
    ok = np.ones(n, dtype=bool)
    bufs = []
    for i, c in enumerate(counts):
        if isinstance(c, str):
            try:
                c = c.encode("ascii")
            except UnicodeEncodeError:
                ok[i], c = False, b""
        elif not isinstance(c, (bytes, bytearray)):
            ok[i], c = False, b""
        bufs.append(bytes(c))
    lens = np.array([len(b) for b in bufs], dtype=np.int64)
    total = np.zeros(n, dtype=np.int64)
    if lens.sum() == 0:
        return ok, total
    cum = np.cumsum(lens)
    a = np.frombuffer(b"".join(bufs), dtype=np.uint8).astype(np.int16) - 48
    bad = (a < 0) | (a > 63)
    if bad.any():
        ok[np.unique(np.searchsorted(cum, np.flatnonzero(bad), side="right"))] = False
        a[bad] = 0
    end = (a & 0x20) == 0
    last = cum[lens > 0] - 1
    ok[np.searchsorted(cum, last[~end[last]], side="right")] = False  # ends inside a number
    end[last] = True  # numbers never span two strings
    gend = np.flatnonzero(end)
    gstart = np.r_[0, gend[:-1] + 1]
    glen = gend - gstart + 1
    gsid = np.searchsorted(cum, gstart, side="right")
    long = glen > _MAX_CHUNKS
    if long.any():
        ok[np.unique(gsid[long])] = False
        glen = np.minimum(glen, _MAX_CHUNKS)
    val = np.zeros(len(gstart), dtype=np.int64)
    for j in range(int(glen.max())):
        sel = np.flatnonzero(glen > j) if j else slice(None)
        val[sel] |= (a[gstart[sel] + j] & 0x1F).astype(np.int64) << (5 * j)
    negative = (a[gstart + glen - 1] & 0x10) != 0
    val[negative] -= np.int64(1) << (5 * glen[negative])
    huge = np.abs(val) > 2**33  # no valid run length (or difference of two) is that large
    if huge.any():
        ok[np.unique(gsid[huge])] = False
        val[huge] = 0
    # index of each number within its string; delta coding: c[i] = v[i] + c[i-2] for i >= 3,
    # i.e. c[0] = v[0] and cumulative sums over the odd and over the even (>= 2) positions.
    first_group = np.searchsorted(gsid, np.arange(n))
    gidx = np.arange(len(gstart)) - first_group[gsid]
    cnt = val.copy()
    odd = (gidx & 1) == 1
    for sel_mask in (odd, ~odd & (gidx >= 2)):
        sel = np.flatnonzero(sel_mask)
        if len(sel) == 0:
            continue
        v = val[sel]
        cs = np.cumsum(v)
        seg = gsid[sel]
        seg_start = np.r_[True, seg[1:] != seg[:-1]]
        start_idx = np.maximum.accumulate(np.where(seg_start, np.arange(len(sel)), 0))
        cnt[sel] = cs - (cs - v)[start_idx]
    invalid = (cnt < 0) | (cnt >= 2**32)
    if invalid.any():
        ok[np.unique(gsid[invalid])] = False
    total[:] = np.bincount(gsid, weights=np.clip(cnt, 0, 2**32), minlength=n).astype(np.int64)
    return ok, total
