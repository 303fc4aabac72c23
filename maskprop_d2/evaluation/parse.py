"""Validation and decoding of a YouTube-VIS GT dict and a results list, shared by scoring
(``ytvis_eval.evaluate``) and ``--check`` (``results_io.check_results``), so that both accept and
reject exactly the same inputs.

Two paths decode the segmentations. The **fast path** (``_fast_tracks``) takes valid inputs:
batches of whole entries (about 4,000 segmentations, so that every array stays a few MB), each
batch's compressed count strings joined into one byte buffer and decoded at once (5-bit groups,
continuation and sign bits, the delta coding as per-parity cumulative sums), its uncompressed count
lists concatenated, every total checked against the frame size, and each track turned into one
run-length *video mask* per chunk of frames: the frames' column-major pixel sequences laid end to
end (an RLE of size ``[h * w, frames]``). It gives up at the first thing it does not expect, and the
**exact path** (``decode_entries``) then validates again and describes every problem (or decodes
what the fast path was too conservative to take, e.g. a number spelt in more characters than
needed). The video IoU of two tracks is the IoU of their video masks, which
``pycocotools.mask.iou`` computes for all (detection, GT) pairs of a video and category at once.

Messages name the file part, the index, the id and the field: ``videos[3] (id=7): bad height
'480'``, ``annotations[12] (id=40, video_id=7) frame 3: RLE covers 100 pixels != 10x20``.
"""

import itertools
import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

__all__ = ["gt_problems", "decode_rle_strings", "Entries", "decode_entries", "MAX_DIM"]

MAX_DIM = 2**14  # largest video height / width accepted
MAX_LENGTH = 2**20  # largest video length accepted
_MAX_CHUNKS = 12  # 5 bits per chunk: 60 bits is more than any valid run length needs
_CHUNK_PIXELS = 2**31 - 1  # a video mask holds at most this many pixels (pycocotools counts: uint)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


# ----------------------------------------------------------------------------- RLE strings
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
    """Decode compressed RLE count strings (str/bytes) without touching pixels.

    Returns ``(ok, cnt, sid)``: ok[i] is False when string i is malformed (or not a str/bytes);
    ``cnt`` holds the run lengths of all strings, in order, and ``sid`` the string each belongs to.
    The run lengths of a malformed string are meaningless (clipped to [0, 2**32]).
    """
    n = len(counts)
    ok = np.ones(n, dtype=bool)
    bufs = []
    for i, c in enumerate(counts):
        if type(c) is str:
            if c.isascii():
                c = c.encode("ascii")
            else:
                ok[i], c = False, b""
        elif not isinstance(c, (bytes, bytearray)):
            ok[i], c = False, b""
        bufs.append(c)
    cnt, sid = _decode_all(bufs, ok)
    return ok, cnt, sid


# ----------------------------------------------------------------------------- the GT
def _video_problems(i: int, v: Any, seen: set) -> List[str]:
    where = "videos[{}]".format(i)
    if not isinstance(v, dict):
        return ["{}: must be an object, got {}".format(where, type(v).__name__)]
    vid = v.get("id")
    if "id" not in v:
        return ["{}: missing 'id'".format(where)]
    if not _is_int(vid):
        return ["{}: 'id' must be an integer, got {!r}".format(where, vid)]
    if vid in seen:
        return ["{} (id={}): duplicate video id {}".format(where, vid, vid)]
    seen.add(vid)
    where = "{} (id={})".format(where, vid)
    out = []
    for k in ("height", "width"):
        if k not in v:
            out.append("{}: missing '{}'".format(where, k))
        elif not (_is_int(v[k]) and 1 <= v[k] <= MAX_DIM):
            out.append("{}: '{}' must be an integer in 1..{}, got {!r}".format(
                where, k, MAX_DIM, v[k]))  # fmt: skip
    fn = v.get("file_names")
    if "file_names" in v and not (isinstance(fn, list) and all(isinstance(s, str) for s in fn)):
        out.append("{}: 'file_names' must be a list of strings".format(where))
        fn = None
    if "length" in v:
        n = v["length"]
        if not (_is_int(n) and 1 <= n <= MAX_LENGTH):
            out.append("{}: 'length' must be an integer in 1..{}, got {!r}".format(
                where, MAX_LENGTH, n))  # fmt: skip
        elif isinstance(fn, list) and len(fn) != n:
            out.append("{}: 'length' {} != {} 'file_names'".format(where, n, len(fn)))
    elif fn is None:
        if "file_names" not in v:
            out.append("{}: missing 'length' (and no 'file_names')".format(where))
    elif not fn:
        out.append("{}: no 'length' and an empty 'file_names'".format(where))
    return out


def video_length(v: Dict[str, Any]) -> int:
    """Frames of a (valid) GT video: its ``length``, else the number of its ``file_names``."""
    return v["length"] if "length" in v else len(v["file_names"])


def gt_problems(gt: Any, need_annotations: bool = True) -> List[str]:
    """Every problem of a YouTube-VIS GT dict's videos, categories and annotations (structure,
    types, ids), the segmentations excepted (``decode_entries`` checks those). [] = OK."""
    if not isinstance(gt, dict):
        return ["the ground truth must be a JSON object, got {}".format(type(gt).__name__)]
    keys = ("videos", "categories") + (("annotations",) if need_annotations else ())
    missing = [k for k in keys if k not in gt]
    if missing:
        return ["the ground truth has no {}".format(", ".join(repr(k) for k in missing))]
    out = []
    for key in ("videos", "categories", "annotations"):
        if key in gt and not isinstance(gt[key], list):
            out.append("'{}' must be a list, got {}".format(key, type(gt[key]).__name__))
    if out:
        return out
    seen: set = set()
    for i, v in enumerate(gt["videos"]):
        out += _video_problems(i, v, seen)
    videos = {v["id"]: v for v in gt["videos"] if isinstance(v, dict) and _is_int(v.get("id"))}
    cats: set = set()
    for i, c in enumerate(gt["categories"]):
        where = "categories[{}]".format(i)
        if not isinstance(c, dict):
            out.append("{}: must be an object, got {}".format(where, type(c).__name__))
        elif "id" not in c:
            out.append("{}: missing 'id'".format(where))
        elif not _is_int(c["id"]):
            out.append("{}: 'id' must be an integer, got {!r}".format(where, c["id"]))
        elif c["id"] in cats:
            out.append("{} (id={}): duplicate category id {}".format(where, c["id"], c["id"]))
        else:
            cats.add(c["id"])
            if "name" in c and not isinstance(c["name"], str):
                out.append("{} (id={}): 'name' must be a string".format(where, c["id"]))
    seen = set()
    for i, ann in enumerate(gt.get("annotations", [])):
        where = "annotations[{}]".format(i)
        if not isinstance(ann, dict):
            out.append("{}: must be an object, got {}".format(where, type(ann).__name__))
            continue
        if "id" not in ann:
            out.append("{}: missing 'id'".format(where))
            continue
        aid = ann["id"]
        if not _is_int(aid):
            out.append("{}: 'id' must be an integer, got {!r}".format(where, aid))
            continue
        if aid in seen:
            out.append("{} (id={}): duplicate annotation id {}".format(where, aid, aid))
            continue
        seen.add(aid)
        where = "{} (id={})".format(where, aid)
        vid, cat = ann.get("video_id"), ann.get("category_id")
        if "video_id" not in ann:
            out.append("{}: missing 'video_id'".format(where))
        elif not _is_int(vid) or vid not in videos:
            out.append("{}: unknown video_id {!r}".format(where, vid))
        if "category_id" not in ann:
            out.append("{}: missing 'category_id'".format(where))
        elif not _is_int(cat) or cat not in cats:
            out.append("{}: unknown category_id {!r}".format(where, cat))
        if "iscrowd" in ann and not (_is_int(ann["iscrowd"]) and ann["iscrowd"] in (0, 1)):
            out.append("{}: 'iscrowd' must be 0 or 1, got {!r}".format(where, ann["iscrowd"]))
        if "segmentations" not in ann:
            out.append("{}: missing 'segmentations'".format(where))
        elif not isinstance(ann["segmentations"], list):
            out.append("{}: 'segmentations' must be a list, got {}".format(
                where, type(ann["segmentations"]).__name__))  # fmt: skip
        areas = ann.get("areas")
        if areas is not None and (
            not isinstance(areas, list) or not all(a is None or _is_number(a) for a in areas)
        ):
            out.append("{}: 'areas' must be a list of numbers or nulls".format(where))
        for k in ("height", "width"):  # optional on annotations; must agree with the video
            if k in ann and _is_int(vid) and vid in videos and ann[k] != videos[vid].get(k):
                out.append("{}: '{}' {!r} != the video's {!r}".format(
                    where, k, ann[k], videos[vid].get(k)))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- entries
class Entries:
    """Decoded tracks of GT annotations or result entries (the valid ones, in input order).

    index: position in the input list; video_id, category_id, score (results) / iscrowd (GT),
    area: mean per-frame area over the frames with a non-zero area (GT: of the "areas" field when
    it has one value per frame); units: per chunk of frames, the video mask as a pycocotools RLE
    (compressed), and unit_area: its pixel count (chunk, entry).
    """

    def __init__(self):
        self.index: List[int] = []
        self.video_id: List[int] = []
        self.category_id: List[int] = []
        self.score: List[float] = []
        self.iscrowd: List[bool] = []
        self.areas_field: List[Optional[list]] = []
        self.area = np.zeros(0)
        self.units: List[List[dict]] = []  # [entry][chunk]
        self.unit_area = np.zeros((0, 0))  # (entry, chunk), chunks past a video's end: 0


def _polygon_problem(seg, h, w) -> Optional[str]:
    if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
        return "malformed polygon (lists of >= 3 x, y pairs expected)"
    if not all(_is_number(x) for p in seg for x in p):
        return "malformed polygon (lists of >= 3 x, y pairs expected)"
    if any(
        min(p[0::2]) < -w or max(p[0::2]) > 2 * w or min(p[1::2]) < -h or max(p[1::2]) > 2 * h
        for p in seg
    ):
        return "polygon coordinates far outside the frame"
    return None


def _size_problem(size, h: int, w: int) -> Optional[str]:
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(s) for s in size):
        return "'size' must be [height, width], got {!r}".format(size)
    if (int(size[0]), int(size[1])) != (h, w):
        return "mask size {}x{} != video size {}x{}".format(size[0], size[1], h, w)
    return None


def _uncompressed_values(lists: List[list]):
    """One int64 array of all count lists, or None when some list is not all non-negative ints."""
    if not lists:
        return np.zeros(0, np.int64)
    try:
        arr = np.array(list(itertools.chain.from_iterable(lists)))
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        return None
    if arr.size and (arr.min() < 0 or arr.max() >= 2**32):
        return None
    return arr.astype(np.int64)


def _list_problem(c) -> Optional[str]:
    try:
        arr = np.asarray(c)
    except (ValueError, TypeError, OverflowError):
        return "RLE counts must be non-negative ints"
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu") or (
        arr.size and (arr.min() < 0 or arr.max() >= 2**32)
    ):
        return "RLE counts must be non-negative ints"
    return None


def decode_entries(
    entries: Sequence[Tuple[int, str, Any, Sequence]],
    videos: Dict[int, Tuple[int, int, int]],
    allow_polygons: bool,
    problems: List[str],
    max_problems: int = 0,
) -> List[Tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Validate and decode the segmentations of ``entries``: (key, where, video_id, segs) with
    ``segs`` a list of the video's length (checked before). Appends the problems (``where frame f:
    ...``) to ``problems``. Returns, per valid entry in order, (key, frames, seg_area, run_start,
    run_len): its present frames, their areas, and its foreground runs in video-mask coordinates.
    """
    comp, comp_meta = [], []  # compressed counts; (entry slot, frame, h*w)
    unc, unc_meta = [], []
    bad_entry = set()
    slots = []
    full = max_problems > 0
    for slot, (key, where, vid, segs) in enumerate(entries):
        h, w, _length = videos[vid]
        hw = h * w
        slots.append((key, where, vid, hw))
        for f, seg in enumerate(segs):
            if seg is None:
                continue
            if type(seg) is dict:
                size = seg.get("size")
                c = seg.get("counts")
                if c is None or size is None:
                    msg = "segmentation must be null or an RLE {'size', 'counts'}"
                elif not (type(size) is list and len(size) == 2 and size[0] == h
                          and size[1] == w and type(size[0]) is int
                          and type(size[1]) is int) and _size_problem(size, h, w):  # fmt: skip
                    msg = _size_problem(size, h, w)
                elif type(c) is str or isinstance(c, (bytes, bytearray)):
                    comp.append(c)
                    comp_meta.append((slot, f, hw))
                    continue
                elif type(c) is list:
                    unc.append(c)
                    unc_meta.append((slot, f, hw))
                    continue
                else:
                    msg = "RLE counts must be a string or a list of ints, got {}".format(
                        type(c).__name__
                    )
            elif isinstance(seg, list):
                if not allow_polygons:
                    msg = "polygons are not allowed here (RLE expected)"
                else:
                    msg = _polygon_problem(seg, h, w)
                    if msg is None:
                        r = mask_util.merge(mask_util.frPyObjects(seg, h, w))
                        comp.append(r["counts"])
                        comp_meta.append((slot, f, hw))
                        continue
            elif isinstance(seg, dict):  # a dict subclass
                seg = dict(seg)
                msg = "segmentation must be a plain JSON object"
            else:
                msg = "segmentation must be null or an RLE {'size', 'counts'}"
            problems.append("{} frame {}: {}".format(where, f, msg))
            bad_entry.add(slot)
            if full and len(problems) >= max_problems:
                return []
    # decode: compressed strings at once, uncompressed lists concatenated
    ok, cnt_c, sid_c = decode_rle_strings(comp)
    n_c = len(comp)
    meta = np.array(comp_meta + unc_meta, dtype=np.int64).reshape(-1, 3)
    unc_lens = np.fromiter((len(c) for c in unc), dtype=np.int64, count=len(unc))
    vals = _uncompressed_values(unc)
    unc_ok = np.ones(len(unc), dtype=bool)
    if vals is None:  # find the lists at fault (rare)
        msgs = [_list_problem(c) for c in unc]
        unc_ok = np.array([m is None for m in msgs], dtype=bool)
        vals = _uncompressed_values([c for c, good in zip(unc, unc_ok, strict=True) if good])
        unc_lens = np.where(unc_ok, unc_lens, 0)
    sid_u = np.repeat(np.arange(len(unc), dtype=np.int64), unc_lens) + n_c
    cnt = np.concatenate([cnt_c, vals])
    sid = np.concatenate([sid_c, sid_u])
    n_seg = n_c + len(unc)
    total = np.bincount(sid, weights=cnt, minlength=n_seg) if n_seg else np.zeros(0)
    seg_ok = np.concatenate([ok, unc_ok])
    size_ok = total == meta[:, 2]
    for s in np.flatnonzero(~(seg_ok & size_ok)):
        slot, f, hw = (int(x) for x in meta[s])
        if not seg_ok[s]:
            msg = "malformed compressed RLE counts" if s < n_c else _list_problem(unc[s - n_c])
        elif s < n_c:
            msg = "RLE covers {} pixels != {}x{}".format(int(total[s]), *videos[slots[slot][2]][:2])
        else:
            msg = "RLE counts sum to {} != {}x{}".format(int(total[s]), *videos[slots[slot][2]][:2])
        problems.append("{} frame {}: {}".format(slots[slot][1], f, msg))
        bad_entry.add(slot)
    if bad_entry:
        if full:
            del problems[max_problems:]
        return []
    # position of every number within its segmentation and the foreground runs
    if len(cnt):
        first = np.r_[0, np.flatnonzero(sid[1:] != sid[:-1]) + 1]
        seg_of_first = sid[first]
        starts = np.zeros(n_seg, dtype=np.int64)
        starts[seg_of_first] = first
        pos = np.arange(len(cnt)) - starts[sid]
        csum = np.cumsum(cnt)
        run_start = csum - cnt - (csum[starts[sid]] - cnt[starts[sid]])
        fg = ((pos & 1) == 1) & (cnt > 0)
    else:
        pos = run_start = np.zeros(0, np.int64)
        fg = np.zeros(0, dtype=bool)
    seg_area = np.bincount(sid[fg], weights=cnt[fg], minlength=n_seg)
    # per entry: frames and areas; runs in video-mask coordinates (frame * h*w + start)
    seg_slot, seg_frame, seg_hw = meta[:, 0], meta[:, 1], meta[:, 2]
    r_sid = sid[fg]
    r_slot = seg_slot[r_sid]
    r_start = seg_frame[r_sid] * seg_hw[r_sid] + run_start[fg]
    r_len = cnt[fg]
    # order: by entry slot, then position (compressed and uncompressed parts are each sorted)
    key = r_slot * (2**40) + r_start
    if len(key) > 1 and not np.all(key[1:] >= key[:-1]):
        order = np.argsort(key, kind="stable")
        r_slot, r_start, r_len = r_slot[order], r_start[order], r_len[order]
    seg_order = np.lexsort((seg_frame, seg_slot)) if n_seg else np.zeros(0, np.int64)
    s_slot, s_frame, s_area = seg_slot[seg_order], seg_frame[seg_order], seg_area[seg_order]
    s_bounds = np.searchsorted(s_slot, np.arange(len(entries) + 1))
    r_bounds = np.searchsorted(r_slot, np.arange(len(entries) + 1))
    out = []
    for slot, (key_, _where, _vid, _hw) in enumerate(slots):
        a, b = s_bounds[slot], s_bounds[slot + 1]
        c, d = r_bounds[slot], r_bounds[slot + 1]
        out.append((key_, s_frame[a:b], s_area[a:b], r_start[c:d], r_len[c:d]))
    return out


def video_masks(frames_pixels: int, length: int, run_start: np.ndarray, run_len: np.ndarray):
    """Per chunk of frames, (RLE of the video mask (compressed, pycocotools), pixels in it) of one
    track: its foreground runs (sorted, in video-mask coordinates) with touching runs merged."""
    per_chunk = max(1, _CHUNK_PIXELS // frames_pixels)
    out = []
    for c0 in range(0, length, per_chunk):
        n = min(per_chunk, length - c0)
        lo, hi = c0 * frames_pixels, (c0 + n) * frames_pixels
        a, b = np.searchsorted(run_start, [lo, hi])
        s, e = run_start[a:b] - lo, run_start[a:b] + run_len[a:b] - lo
        if len(s) > 1:
            touch = s[1:] == e[:-1]
            if touch.any():
                keep = np.r_[True, ~touch]
                s = s[keep]
                e = e[np.r_[~touch, True]]
        counts = np.empty(2 * len(s) + 1, dtype=np.uint32)
        counts[1:-1:2] = e - s
        counts[0:-1:2] = s - np.r_[0, e[:-1]]
        counts[-1] = n * frames_pixels - (e[-1] if len(e) else 0)
        out.append(({"size": [frames_pixels, n], "counts": counts}, int((e - s).sum())))
    return out


# ----------------------------------------------------------------------------- the fast path
# Valid inputs take this path: whole batches of entries at a time, every array of a batch small
# enough to stay in the CPU caches (a few MB), and no per-mask numpy call. Anything unusual (a bad
# character, an empty string, a size mismatch, an overlong number, a negative or too-large run
# length, polygons with problems ...) makes it give up (None); the exact path above (``decode_
# entries``) then validates again and describes every problem, or decodes what the fast path
# was too conservative to accept.
_VALID_CHARS = bytes(range(48, 112))
_FAST_MAX_CHARS = 7  # 35 bits: more than any run length < 2**32 needs in the minimal encoding
_BATCH_SEGMENTS = 4096


def _fast_strings(bufs: List[bytes], lens: np.ndarray):
    """Run lengths of compressed count strings (pycocotools' ``rleFrString``, vectorised):
    ``(cnt, first)``, the numbers of all strings in order and the index of each string's first
    number; None when some string is malformed or unusual (the caller then takes the exact path).
    """
    if len(bufs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    buf = b"".join(bufs)
    if lens.min() == 0 or buf.translate(None, _VALID_CHARS):
        return None
    a = np.frombuffer(buf, dtype=np.uint8)
    cum = np.cumsum(lens)
    if a[cum - 1].max() >= 80:  # ends inside a number ('0' + 0x20: a continuation character)
        return None
    e = np.flatnonzero(a < 80)  # the last character of every number
    m = len(e)
    v = a[e].astype(np.int64) - 48
    v -= (v & 0x10) << 1  # one character: a 5-bit two's complement number
    if m < len(a):  # the numbers of several characters: low 5-bit groups first, sign on the last
        glen = np.diff(e, prepend=-1)
        sel = np.flatnonzero(glen > 1)
        k = glen[sel] - 1
        kmax = int(k.max())
        if kmax >= _FAST_MAX_CHARS:
            return None
        st = e[sel] - k
        val = v[sel] << (5 * k)
        for j in range(kmax):
            live = np.flatnonzero(k > j)
            val[live] += (a[st[live] + j].astype(np.int64) - 80) << (5 * j)
        v[sel] = val
    first = np.searchsorted(e, cum - lens)
    nums = np.diff(first, append=m)
    # delta coding: c[i] = v[i] + c[i-2] from a string's fourth number on. Per global parity the
    # numbers form segments ({f}, {f+1, f+3, ...}, {f+2, f+4, ...} for a string's first number
    # f) and c is the cumulative sum of v within each segment: one cumulative sum per parity,
    # with the previous segment's total (of the same parity) taken off at each segment start.
    n2, n3 = nums >= 2, nums >= 3
    last = first + nums - 1
    s1, s2 = first[n2] + 1, first[n3] + 2
    starts = np.concatenate([first, s1, s2])
    e1, e2 = last[n2] - ((last[n2] - s1) & 1), last[n3] - ((last[n3] - s2) & 1)
    ends = np.concatenate([first, e1, e2])
    if m & 1:
        v = np.append(v, 0)
    cs = v.reshape(-1, 2).cumsum(axis=0).ravel()
    order = np.argsort(starts, kind="stable")
    starts, tot = starts[order], (cs[ends] - cs[starts] + v[starts])[order]
    for p in (0, 1):
        q = np.flatnonzero((starts & 1) == p)
        v[starts[q[1:]]] -= tot[q[:-1]]
    cnt = v.reshape(-1, 2).cumsum(axis=0).ravel()[:m]
    if cnt.min() < 0 or cnt.max() >= 2**32:
        return None
    return cnt, first


def _fast_lists(lists: List[list]):
    """``(cnt, first)`` of uncompressed count lists, or None when one is empty or not all
    non-negative ints below 2**32 (the exact path then describes it)."""
    if not lists:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    if lens.min() == 0:
        return None
    vals = _uncompressed_values(lists)
    if vals is None:
        return None
    return vals, np.cumsum(lens) - lens


def _fast_runs(cnt, first, seg_base, seg_hw):
    """Foreground runs ``(start, length)`` (start: seg_base + offset in its frame) and the
    foreground area of each segmentation; None when a segmentation does not cover its frame."""
    m = len(cnt)
    if len(first) == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    nums = np.diff(first, append=m)
    cs = np.cumsum(cnt)
    if not np.array_equal(cs[first + nums - 1] - cs[first] + cnt[first], seg_hw):
        return None
    fg = ((np.arange(m) - np.repeat(first, nums)) & 1).astype(bool)
    fg &= cnt > 0
    start = cs - cnt
    start += np.repeat(seg_base - start[first], nums)
    sel = np.flatnonzero(fg)
    seg_fg = np.add.reduceat(np.where(fg, cnt, 0), first)
    return start[sel], cnt[sel], seg_fg


def _fast_batch(batch, videos, src, is_gt, comp, comp_seg, unc, unc_seg, seg_slot, seg_frame):
    """Tracks (see ``Parsed``) of a batch of valid entries, or None."""
    # units (chunks of frames) of the batch's entries, laid end to end, one pixel apart
    unit_base, unit_size, unit_hw, unit_n, first_unit, per_chunk = [], [], [], [], [], []
    pos = 0
    for _key, vid, _segs in batch:
        h, w, length = videos[vid]
        hw = h * w
        pc = max(1, _CHUNK_PIXELS // hw)
        first_unit.append(len(unit_base))
        per_chunk.append(pc)
        for c0 in range(0, length, pc):
            n = min(pc, length - c0)
            unit_base.append(pos)
            unit_size.append(n * hw)
            unit_hw.append(hw)
            unit_n.append(n)
            pos += n * hw + 1
    unit_base = np.array(unit_base, dtype=np.int64)
    unit_size = np.array(unit_size, dtype=np.int64)
    unit_hw_a = np.array(unit_hw, dtype=np.int64)
    first_unit = np.array(first_unit, dtype=np.int64)
    per_chunk = np.array(per_chunk, dtype=np.int64)
    seg_slot = np.array(seg_slot, dtype=np.int64)
    seg_frame = np.array(seg_frame, dtype=np.int64)
    seg_unit = first_unit[seg_slot] + seg_frame // per_chunk[seg_slot]
    seg_base = unit_base[seg_unit] + (seg_frame % per_chunk[seg_slot]) * unit_hw_a[seg_unit]
    seg_hw = unit_hw_a[seg_unit]
    starts, lengths = [], []
    seg_fg = np.zeros(len(seg_slot), dtype=np.int64)
    for items, segs_of, decode in ((comp, comp_seg, None), (unc, unc_seg, _fast_lists)):
        if not items:
            continue
        idx = np.array(segs_of, dtype=np.int64)
        if decode is None:
            if all(type(c) is str for c in items):
                try:
                    bufs = ["".join(items).encode("ascii")]
                except UnicodeEncodeError:
                    return None
                lens = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
                dec = _fast_strings([bufs[0]], lens)
            else:
                try:
                    bufs = [c.encode("ascii") if type(c) is str else c for c in items]
                except UnicodeEncodeError:
                    return None
                lens = np.fromiter(map(len, bufs), dtype=np.int64, count=len(bufs))
                dec = _fast_strings(bufs, lens)
        else:
            dec = decode(items)
        if dec is None:
            return None
        runs = _fast_runs(dec[0], dec[1], seg_base[idx], seg_hw[idx])
        if runs is None:
            return None
        starts.append(runs[0])
        lengths.append(runs[1])
        seg_fg[idx] = runs[2]
    s = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    ln = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    if len(starts) > 1:
        order = np.argsort(s, kind="stable")
        s, ln = s[order], ln[order]
    e = s + ln
    if len(s) > 1:  # touching runs (across frames) merged
        touch = s[1:] == e[:-1]
        if touch.any():
            s = s[np.r_[True, ~touch]]
            e = e[np.r_[~touch, True]]
    nu = len(unit_base)
    u = np.searchsorted(unit_base, s, side="right") - 1
    k_u = np.bincount(u, minlength=nu)
    r = len(s)
    counts = np.empty(2 * r + nu, dtype=np.int64)
    gap_pos = 2 * np.arange(r) + u
    prev_e = np.empty(r, dtype=np.int64)
    if r:
        prev_e[1:] = e[:-1]
        new_unit = np.r_[True, u[1:] != u[:-1]]
        prev_e[new_unit] = unit_base[u[new_unit]]
    counts[gap_pos] = s - prev_e
    counts[gap_pos + 1] = e - s
    runs_end = np.cumsum(k_u)
    final_pos = 2 * runs_end + np.arange(nu)
    last_e = unit_base.copy()
    has = k_u > 0
    last_e[has] = e[runs_end[has] - 1]
    counts[final_pos] = unit_base + unit_size - last_e
    pix = np.bincount(u, weights=e - s, minlength=nu).astype(np.int64).tolist()
    rles = [
        {"size": [hw, n], "counts": c}
        for hw, n, c in zip(unit_hw, unit_n, np.split(counts.astype(np.uint32), final_pos[:-1] + 1),
                            strict=True)
    ]  # fmt: skip
    compressed = mask_util.frPyObjects(rles, 0, 0)
    # per entry: area (mean non-zero frame area, or the GT's "areas") and units
    positive = seg_fg > 0
    nb = len(batch)
    area_sum = np.bincount(seg_slot, weights=np.where(positive, seg_fg, 0), minlength=nb)
    area_n = np.bincount(seg_slot, weights=positive, minlength=nb)
    out = []
    ends = first_unit.tolist() + [nu]
    for slot, (key, vid, _segs) in enumerate(batch):
        e_ = src[key]
        length = videos[vid][2]
        if is_gt and isinstance(e_.get("areas"), list) and len(e_["areas"]) == length:
            area = _mean_positive(e_["areas"])
        else:
            area = float(area_sum[slot] / area_n[slot]) if area_n[slot] else 0.0
        extra = bool(e_.get("iscrowd", 0)) if is_gt else float(e_["score"])
        a, b = ends[slot], ends[slot + 1]
        units = list(zip(compressed[a:b], pix[a:b], strict=True))
        out.append((key, vid, e_["category_id"], extra, area, units))
    return out


def _fast_tracks(entries, videos, allow_polygons: bool, src, is_gt: bool):
    """Tracks (see ``Parsed``) of ``entries`` ((key, where, video_id, segs) as for
    ``decode_entries``), or None when the fast path does not accept them all."""
    out = []
    batch, comp, comp_seg, unc, unc_seg, seg_slot, seg_frame = [], [], [], [], [], [], []
    n_entries = len(entries)
    for i, (key, _where, vid, segs) in enumerate(entries):
        h, w, _length = videos[vid]
        slot = len(batch)
        batch.append((key, vid, segs))
        for f, seg in enumerate(segs):
            if seg is None:
                continue
            if type(seg) is dict:
                size = seg.get("size")
                if not (type(size) is list and len(size) == 2 and size[0] == h and size[1] == w
                        and type(size[0]) is int and type(size[1]) is int):  # fmt: skip
                    return None
                c = seg.get("counts")
                tc = type(c)
                if tc is str or tc is bytes:
                    comp_seg.append(len(seg_slot))
                    comp.append(c)
                elif tc is list:
                    unc_seg.append(len(seg_slot))
                    unc.append(c)
                else:
                    return None
            elif allow_polygons and type(seg) is list:
                if _polygon_problem(seg, h, w) is not None:
                    return None
                comp_seg.append(len(seg_slot))
                comp.append(mask_util.merge(mask_util.frPyObjects(seg, h, w))["counts"])
            else:
                return None
            seg_slot.append(slot)
            seg_frame.append(f)
        if len(seg_slot) >= _BATCH_SEGMENTS or i == n_entries - 1:
            tracks = _fast_batch(batch, videos, src, is_gt, comp, comp_seg, unc, unc_seg,
                                 seg_slot, seg_frame)  # fmt: skip
            if tracks is None:
                return None
            out += tracks
            batch, comp, comp_seg, unc, unc_seg, seg_slot, seg_frame = [], [], [], [], [], [], []
    return out


# ----------------------------------------------------------------------------- both files
def _result_entries(results, videos, cats, problems):
    """Structure of the results list; returns the (index, where, video_id, segs) to decode."""
    out = []
    for i, r in enumerate(results):
        where = "results[{}]".format(i)
        if type(r) is not dict:
            problems.append("{}: entry must be an object, got {}".format(where, type(r).__name__))
            continue
        if not ("video_id" in r and "category_id" in r and "score" in r and "segmentations" in r):
            missing = [k for k in ("video_id", "category_id", "score", "segmentations")
                       if k not in r]  # fmt: skip
            problems.append("{}: missing key(s) {}".format(where, ", ".join(missing)))
            continue
        vid = r["video_id"]
        where = "results[{}] (video_id={!r})".format(i, vid)
        if type(vid) is not int and not _is_int(vid) or vid not in videos:
            problems.append("{}: unknown video_id {!r}".format(where, vid))
            continue
        good = True
        cat = r["category_id"]
        if type(cat) is not int and not _is_int(cat) or cat not in cats:
            problems.append("{}: unknown category_id {!r}".format(where, cat))
            good = False
        s = r["score"]
        if not (type(s) is float and math.isfinite(s)) and not _is_number(s):
            problems.append("{}: score must be a finite number, got {!r}".format(where, s))
            good = False
        segs = r["segmentations"]
        if type(segs) is not list:
            problems.append("{}: 'segmentations' must be a list, got {}".format(
                where, type(segs).__name__))  # fmt: skip
            continue
        length = videos[vid][2]
        if len(segs) != length:
            problems.append("{}: {} segmentations for a video of {} frames".format(
                where, len(segs), length))  # fmt: skip
            continue
        if good:
            out.append((i, where, vid, segs))
        else:  # its segmentations are still checked
            out.append((-1 - i, where, vid, segs))
    return out


class Parsed:
    """videos {id: (h, w, length)}, categories {id: name}, gt and dt: lists of tracks
    ``(input index, video_id, category_id, score or iscrowd, area, units)`` where units are the
    track's video masks per chunk (pycocotools RLE, pixel count)."""

    def __init__(self, videos, cats, gt, dt):
        self.videos, self.cats, self.gt, self.dt = videos, cats, gt, dt


def _mean_positive(values) -> float:
    vals = [float(a) for a in values if a]  # the official `if a`: null and 0 are skipped
    return float(np.mean(vals)) if vals else 0.0


def _tracks(decoded, videos, src, is_gt):
    """Tracks of decoded entries (see Parsed); video masks built with one pycocotools call."""
    rles, meta = [], []
    for key, _frames, seg_area, r_start, r_len in decoded:
        e = src[key]
        h, w, length = videos[e["video_id"]]
        units = video_masks(h * w, length, r_start, r_len)
        pos = seg_area > 0
        if is_gt and isinstance(e.get("areas"), list) and len(e["areas"]) == length:
            area = _mean_positive(e["areas"])
        else:
            area = float(seg_area[pos].sum() / pos.sum()) if pos.any() else 0.0
        extra = bool(e.get("iscrowd", 0)) if is_gt else float(e["score"])
        meta.append((key, e["video_id"], e["category_id"], extra, area, len(units)))
        rles.extend(u[0] for u in units)
        meta[-1] = meta[-1] + ([u[1] for u in units],)
    compressed = mask_util.frPyObjects(rles, 0, 0) if rles else []
    out, k = [], 0
    for key, vid, cat, extra, area, n, pix in meta:
        out.append((key, vid, cat, extra, area, list(zip(compressed[k : k + n], pix, strict=True))))
        k += n
    return out


def parse(gt: Any, results: Any = None, *, need_annotations: bool = True,
          max_problems: int = 0):  # fmt: skip
    """Validate and decode ``gt`` (and ``results`` unless None).

    Returns ``(gt_problems, results_problems, Parsed or None)``. The GT is checked first; with a
    broken GT the results are not looked at. ``max_problems`` > 0 stops after that many.
    """
    def cut(p):
        return p[:max_problems] if max_problems > 0 else p

    problems = gt_problems(gt, need_annotations=need_annotations)
    if problems:
        return cut(problems), [], None
    videos = {}
    for v in gt["videos"]:
        videos[v["id"]] = (v["height"], v["width"], video_length(v))
    cats = {c["id"]: c.get("name", str(c["id"])) for c in gt["categories"]}
    anns = gt.get("annotations", [])
    gt_entries = []
    for i, ann in enumerate(anns):
        where = "annotations[{}] (id={}, video_id={})".format(i, ann["id"], ann["video_id"])
        segs = ann["segmentations"]
        length = videos[ann["video_id"]][2]
        if len(segs) != length:
            problems.append("{}: {} segmentations for a video of {} frames".format(
                where, len(segs), length))  # fmt: skip
            continue
        gt_entries.append((i, where, ann["video_id"], segs))
    gts = None if problems else _fast_tracks(gt_entries, videos, True, anns, True)
    if gts is None:  # the exact path: describes every problem
        if not (max_problems > 0 and len(problems) >= max_problems):
            gt_dec = decode_entries(gt_entries, videos, True, problems, max_problems)
        if problems:
            return cut(problems), [], None
        gts = _tracks(gt_dec, videos, anns, True)
    res_problems: List[str] = []
    res_entries = []
    if results is not None:
        if not isinstance(results, list):
            res_problems.append("results must be a JSON list of entries, got {}".format(
                type(results).__name__))  # fmt: skip
        else:
            res_entries = _result_entries(results, videos, cats, res_problems)
    dts = None if res_problems else _fast_tracks(res_entries, videos, False, results, False)
    if dts is None:
        if not (max_problems > 0 and len(res_problems) >= max_problems):
            dt_dec = decode_entries(res_entries, videos, False, res_problems, max_problems)
        if res_problems:
            return [], cut(res_problems), None
        dts = _tracks(dt_dec, videos, results, False)
    return [], [], Parsed(videos, cats, gts, dts)
