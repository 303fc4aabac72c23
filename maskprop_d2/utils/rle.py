"""COCO run-length encoding of masks (numpy and pycocotools only, no torch).

The YouTube-VIS formats store one segmentation per frame: a compressed RLE
``{"size": [H, W], "counts": str}``, an uncompressed RLE (``counts`` a list of ints), a polygon
list, or ``null`` where the object is absent.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

__all__ = [
    "encode_mask",
    "encode_masks",
    "decode_segmentation",
    "decode_rle_strings",
    "rle_totals",
]

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


def _decode_all(bufs: List[bytes], ok: np.ndarray):
    """Decode compressed count strings (pycocotools' ``rleFrString``, vectorised over all of them);
    returns (cnt, sid) for their numbers and clears ok[i] for malformed strings (bad characters,
    a truncated or overlong number, a negative or overflowing run length)."""
    n = len(bufs)
    lens = np.fromiter(map(len, bufs), dtype=np.int64, count=n)
    nchar = int(lens.sum())
    if nchar == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cum = np.cumsum(lens)
    a = np.frombuffer(b"".join(bufs), dtype=np.uint8)
    bad = (a < 48) | (a > 111)
    if bad.any():
        ok[np.unique(np.searchsorted(cum, np.flatnonzero(bad), side="right"))] = False
        a = np.where(bad, 48, a)
    a = a - np.uint8(48)
    end = (a & 0x20) == 0
    last = cum[lens > 0] - 1
    ok[np.flatnonzero(lens > 0)[~end[last]]] = False  # ends inside a number
    end[last] = True  # numbers never span two strings
    gend = np.flatnonzero(end)
    m = len(gend)
    gstart = np.empty(m, dtype=np.int64)
    gstart[0] = 0
    gstart[1:] = gend[:-1] + 1
    glen = gend - gstart + 1
    char_sid = np.repeat(np.arange(n, dtype=np.int64), lens)
    sid = char_sid[gend]
    val = (a[gstart] & 0x1F).astype(np.int64)
    maxlen = int(glen.max())
    if maxlen > _MAX_CHUNKS:
        ok[np.unique(sid[glen > _MAX_CHUNKS])] = False
        glen = np.minimum(glen, _MAX_CHUNKS)
        maxlen = _MAX_CHUNKS
    for j in range(1, maxlen):  # the few numbers of more than one character
        sel = np.flatnonzero(glen > j)
        val[sel] |= (a[gstart[sel] + j] & 0x1F).astype(np.int64) << (5 * j)
    sign = (a[gend] & 0x10) != 0
    val -= np.where(sign, np.left_shift(np.int64(1), 5 * glen), 0)
    # delta coding: c[i] = v[i] + c[i-2] for i >= 3, i.e. c[0] = v[0] and cumulative sums over
    # the odd and over the even (>= 2) positions of each string. Within a string, two positions
    # have the same parity iff their global indices do: cumulative sums over the global parities,
    # less their value just before the string's first number.
    nums = np.bincount(sid, minlength=n)
    first = np.cumsum(nums) - nums
    is_first = np.zeros(m, dtype=bool)
    is_first[first[nums > 0]] = True
    x = np.where(is_first, 0, val)
    gpar = (np.arange(m) & 1).astype(bool)
    even_cs = np.cumsum(np.where(gpar, 0, x))
    odd_cs = np.cumsum(np.where(gpar, x, 0))
    same = np.where(gpar, odd_cs, even_cs)
    f = first[nums > 0]
    before_even = even_cs[f] - np.where(gpar[f], 0, x[f])  # x[f] is 0: the sums before f
    before_odd = odd_cs[f] - np.where(gpar[f], x[f], 0)
    # positions with local index >= 1 of parity q (global parity q ^ gpar[f]) take the sums of
    # their own global parity; string k's base is the sum just before its first number.
    rep = np.repeat(np.arange(len(f)), nums[nums > 0])
    base = np.where(gpar, before_odd[rep], before_even[rep])
    cnt = np.where(is_first, val, same - base)
    invalid = (cnt < 0) | (cnt >= 2**32)
    if invalid.any():
        ok[np.unique(sid[invalid])] = False
        cnt = np.clip(cnt, 0, 2**32)
    return cnt, sid


def decode_rle_strings(counts: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode compressed RLE count strings (str/bytes) without touching pixels, all at once.

    Returns ``(ok, cnt, sid)``: ok[i] is False when string i is malformed (bad characters, a
    truncated or overlong number, an overflowing or negative run length) or not a str/bytes;
    ``cnt`` holds the run lengths of all strings, in order, and ``sid`` the string each belongs
    to. The run lengths of a malformed string are meaningless (clipped to [0, 2**32]).
    """
    n = len(counts)
    ok = np.ones(n, dtype=bool)
    bufs = []
    for i, c in enumerate(counts):
        if isinstance(c, str):
            if c.isascii():
                c = c.encode("ascii")
            else:
                ok[i], c = False, b""
        elif not isinstance(c, (bytes, bytearray)):
            ok[i], c = False, b""
        bufs.append(c)
    cnt, sid = _decode_all(bufs, ok)
    return ok, cnt, sid


def rle_totals(counts: Sequence) -> Tuple[np.ndarray, np.ndarray]:
    """Decode compressed RLE count strings (str/bytes) without touching pixels, all at once.

    Returns ``(ok, total)``: ok[i] is False when string i is malformed (bad characters, a truncated
    number, an overflowing or negative run length); total[i] is the sum of its run lengths, which a
    well-formed mask of size (h, w) has equal to h * w. Vectorised over all strings (numpy).
    """
    ok, cnt, sid = decode_rle_strings(counts)
    total = np.bincount(sid, weights=cnt, minlength=len(counts)).astype(np.int64)
    return ok, total
