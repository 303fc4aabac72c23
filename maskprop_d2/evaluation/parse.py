"""Validation and decoding of a YouTube-VIS GT dict and a results list, shared by scoring
(``ytvis_eval.evaluate``) and ``--check`` (``results_io.check_results``), so that both accept and
reject exactly the same inputs.

Both files decode to ``Tracks``: numpy arrays of the tracks, of their segmentations (present
frames) and of the foreground runs of every track in *video-mask coordinates* (frame * h * w + the
pixel's column-major index), which ``ytvis_eval`` intersects directly.

Two paths decode the segmentations. The **fast path** (``_fast_tracks``) takes valid inputs: the
segmentations of all entries are gathered with a few C-level passes (``map``, ``compress``), the
compressed count strings joined into one byte buffer and decoded at once (5-bit groups,
continuation and sign bits, the delta coding as one segmented cumulative sum), the uncompressed
count lists concatenated, every segmentation padded to an even number of run lengths (so that
run starts and ends are the even and odd entries of one cumulative sum) and every total checked
against the frame size. It gives up at the first thing it does not expect, and the **exact path**
(``decode_entries``) then validates again and describes every problem (or decodes what the fast
path was too conservative to take, e.g. a number spelt in more characters than needed).

Messages name the file part, the index, the id and the field: ``videos[3] (id=7): bad height
'480'``, ``annotations[12] (id=40, video_id=7) frame 3: RLE covers 100 pixels != 10x20``.
"""

import array
import itertools
import math
import operator
import re
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

from ..utils.rle import decode_rle_strings
from ..utils.ytvis_fields import (
    MALFORMED_COUNTS,
    annotation_problems,
    category_problems,
    count_list_problem,
    frames_problem,
    id_problem,
    is_int,
    is_number,
    object_problem,
    polygon_problem,
    rle_total_problem,
    segmentation_problem,
    video_length,
    video_problems,
)

__all__ = ["gt_problems", "decode_rle_strings", "Tracks", "decode_entries", "parse"]


# ----------------------------------------------------------------------------- the GT
def _located(where: str, problems: List[str]) -> List[str]:
    return ["{}: {}".format(where, p) for p in problems]


def _id_problems(part: str, i: int, x: Any, seen: set, what: str) -> Tuple[List[str], str]:
    """Object, id and uniqueness of ``gt[part][i]``: (its problems, where it is). An entry with
    a problem here is not looked at further."""
    where = "{}[{}]".format(part, i)
    bad = object_problem(x) or id_problem(x)
    if bad:
        return [where + ": " + bad], where
    where = "{} (id={})".format(where, x["id"])
    if x["id"] in seen:
        return ["{}: duplicate {} id {}".format(where, what, x["id"])], where
    seen.add(x["id"])
    return [], where


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
        bad, where = _id_problems("videos", i, v, seen, "video")
        out += bad or _located(where, video_problems(v))
    videos = {v["id"]: v for v in gt["videos"] if isinstance(v, dict) and is_int(v.get("id"))}
    cats: set = set()
    for i, c in enumerate(gt["categories"]):
        bad, where = _id_problems("categories", i, c, cats, "category")
        out += bad or _located(where, category_problems(c))
    seen = set()
    for i, ann in enumerate(gt.get("annotations", [])):
        bad, where = _id_problems("annotations", i, ann, seen, "annotation")
        out += bad or _located(where, annotation_problems(ann, videos, cats))
    return out


# ----------------------------------------------------------------------------- the exact path
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


def _sort_segmentations(entries, videos, allow_polygons: bool, problems: List[str],
                        max_problems: int):
    """Check each segmentation's shape and sort it into compressed or uncompressed counts.

    Returns (comp, unc, meta, slots, bad_entry): the compressed counts (str/bytes; polygons
    merged into one), the uncompressed count lists, meta (S, 3) int64 of (entry slot, frame, h*w)
    per segmentation (compressed first), per entry slot (key, where, video_id, h*w), and the
    slots with problems. None when ``max_problems`` (> 0) problems are reached.
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
            msg = segmentation_problem(seg, h, w, allow_polygons)
            if msg is None:
                if type(seg) is list:  # polygons: merged into one compressed RLE
                    comp.append(mask_util.merge(mask_util.frPyObjects(seg, h, w))["counts"])
                    comp_meta.append((slot, f, hw))
                elif type(seg["counts"]) is list:
                    unc.append(seg["counts"])
                    unc_meta.append((slot, f, hw))
                else:
                    comp.append(seg["counts"])
                    comp_meta.append((slot, f, hw))
                continue
            problems.append("{} frame {}: {}".format(where, f, msg))
            bad_entry.add(slot)
            if full and len(problems) >= max_problems:
                return None
    meta = np.array(comp_meta + unc_meta, dtype=np.int64).reshape(-1, 3)
    return comp, unc, meta, slots, bad_entry


def _decode_counts(comp: list, unc: List[list]):
    """All run lengths: compressed strings decoded at once, uncompressed lists concatenated.

    Returns (cnt, sid, seg_ok, total): cnt (N,) int64 run lengths, sid (N,) the segmentation
    index of each (compressed first, then uncompressed), seg_ok (S,) bool whether the
    segmentation's counts are well formed, total (S,) the pixels each covers.
    """
    ok, cnt_c, sid_c = decode_rle_strings(comp)
    n_c = len(comp)
    unc_lens = np.fromiter((len(c) for c in unc), dtype=np.int64, count=len(unc))
    vals = _uncompressed_values(unc)
    unc_ok = np.ones(len(unc), dtype=bool)
    if vals is None:  # find the lists at fault (rare)
        msgs = [count_list_problem(c) for c in unc]
        unc_ok = np.array([m is None for m in msgs], dtype=bool)
        vals = _uncompressed_values([c for c, good in zip(unc, unc_ok, strict=True) if good])
        unc_lens = np.where(unc_ok, unc_lens, 0)
    sid_u = np.repeat(np.arange(len(unc), dtype=np.int64), unc_lens) + n_c
    cnt = np.concatenate([cnt_c, vals])
    sid = np.concatenate([sid_c, sid_u])
    n_seg = n_c + len(unc)
    total = np.bincount(sid, weights=cnt, minlength=n_seg) if n_seg else np.zeros(0)
    seg_ok = np.concatenate([ok, unc_ok])
    return cnt, sid, seg_ok, total


def _run_starts(cnt: np.ndarray, sid: np.ndarray, n_seg: int):
    """Start (N,) of every run within its segmentation and whether it is foreground (N,) bool
    (odd position, non-empty)."""
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
    return run_start, fg


def _entry_runs(slots: list, meta: np.ndarray, sid: np.ndarray, cnt: np.ndarray,
                run_start: np.ndarray, fg: np.ndarray):
    """Per entry slot (key, frames, seg_area, run_start, run_len); runs in video-mask
    coordinates (frame * h*w + start), sorted."""
    n_seg = len(meta)
    seg_area = np.bincount(sid[fg], weights=cnt[fg], minlength=n_seg)
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
    s_bounds = np.searchsorted(s_slot, np.arange(len(slots) + 1))
    r_bounds = np.searchsorted(r_slot, np.arange(len(slots) + 1))
    out = []
    for slot, (key_, _where, _vid, _hw) in enumerate(slots):
        a, b = s_bounds[slot], s_bounds[slot + 1]
        c, d = r_bounds[slot], r_bounds[slot + 1]
        out.append((key_, s_frame[a:b], s_area[a:b], r_start[c:d], r_len[c:d]))
    return out


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
    sorted_segs = _sort_segmentations(entries, videos, allow_polygons, problems, max_problems)
    if sorted_segs is None:
        return []
    comp, unc, meta, slots, bad_entry = sorted_segs
    cnt, sid, seg_ok, total = _decode_counts(comp, unc)
    n_c = len(comp)
    size_ok = total == meta[:, 2]
    for s in np.flatnonzero(~(seg_ok & size_ok)):
        slot, f, hw = (int(x) for x in meta[s])
        if not seg_ok[s]:
            msg = MALFORMED_COUNTS if s < n_c else count_list_problem(unc[s - n_c])
        else:
            msg = rle_total_problem(int(total[s]), *videos[slots[slot][2]][:2], s < n_c)
        problems.append("{} frame {}: {}".format(slots[slot][1], f, msg))
        bad_entry.add(slot)
    if bad_entry:
        if max_problems > 0:
            del problems[max_problems:]
        return []
    run_start, fg = _run_starts(cnt, sid, len(meta))
    return _entry_runs(slots, meta, sid, cnt, run_start, fg)


# ----------------------------------------------------------------------------- tracks
class Tracks:
    """Decoded tracks of GT annotations or result entries (the valid ones, in input order).

    Per track (arrays of length ``n``): ``key`` (position in the input list), ``video`` and
    ``category`` (ranks of its ids among the GT's sorted video / category ids), ``extra`` (a
    result's score / a GT's iscrowd), ``area`` (mean per-frame area over the frames with a
    non-zero area; GT: of its "areas" field when that has one value per frame), ``pix`` (pixels
    over all frames, float), ``length`` and ``hw`` (frames and pixels per frame of its video) and
    its runs ``r0[i]:r1[i]``.

    Per segmentation (present frames, ordered by track then frame): ``seg_track``, ``seg_frame``,
    ``seg_area`` and ``seg_ext0`` / ``seg_ext1``: its pixels lie in [ext0, ext1).

    Runs: ``starts`` and ``ends``, in video-mask coordinates (frame * h * w + the pixel's
    column-major index within the frame); the runs of a track are sorted and disjoint, but may be
    empty or touch.
    """

    _FIELDS = ("key", "video", "category", "extra", "area", "pix", "length", "hw", "r0",
               "r1", "seg_track", "seg_frame", "seg_area", "seg_ext0", "seg_ext1", "starts",
               "ends")  # fmt: skip

    def __init__(self, **arrays):
        for name in self._FIELDS:
            setattr(self, name, arrays[name])

    def __len__(self) -> int:
        return len(self.key)


def _mean_positive(values) -> float:
    vals = [float(a) for a in values if a]  # the official `if a`: null and 0 are skipped
    return float(np.mean(vals)) if vals else 0.0


def _field_areas(area: np.ndarray, src_e: list, length: np.ndarray) -> None:
    """GT tracks with an "areas" field of one value per frame: their area is its mean over the
    non-zero values (``_mean_positive``). All at once when every value is an integer (any order
    of summation is then exact, so the sums equal ``np.mean``'s pairwise ones), else one by one."""
    fields = [e.get("areas") for e in src_e]
    sel = [i for i, a in enumerate(fields) if isinstance(a, list) and len(a) == length[i]]
    if not sel:
        return
    lists = [fields[i] for i in sel]
    vals = np.array(list(itertools.chain.from_iterable(lists)), dtype=np.float64)  # null: nan
    counted = (vals != 0) & ~np.isnan(vals)
    x = np.where(counted, vals, 0.0)
    if np.all(np.mod(x, 1) == 0) and np.abs(x).sum() < 2**52:
        lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        starts = np.cumsum(lens) - lens
        n = np.add.reduceat(counted, starts, dtype=np.int64)
        total = np.add.reduceat(x, starts)
        area[sel] = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    else:
        for i, a in zip(sel, lists, strict=True):
            area[i] = _mean_positive(a)


def _make_tracks(entries, videos, ranks, src, is_gt, seg_entry, seg_frame, seg_area, seg_ext0,
                 seg_ext1, seg_run0, starts, ends) -> Tracks:  # fmt: skip
    """Tracks of ``entries`` ((key, where, video_id, segs), all valid) from their segmentations'
    arrays (ordered by entry then frame; ``seg_run0``: index of each one's first run). ``ranks``:
    ({video id: rank}, {category id: rank})."""
    n = len(entries)
    keys = [e[0] for e in entries]
    vids = [e[2] for e in entries]
    info = [videos[v] for v in vids]
    length = np.fromiter(map(operator.itemgetter(2), info), dtype=np.int64, count=n)
    hw = np.array([h * w for h, w, _ in info], dtype=np.int64)
    src_e = [src[k] for k in keys]
    video = np.fromiter(map(ranks[0].__getitem__, vids), dtype=np.int64, count=n)
    cat_rank = ranks[1].__getitem__
    cat = np.fromiter((cat_rank(e["category_id"]) for e in src_e), dtype=np.int64, count=n)
    if is_gt:
        extra = np.array([e.get("iscrowd", 0) for e in src_e], dtype=bool)
    else:
        extra = np.fromiter(map(operator.itemgetter("score"), src_e), dtype=np.float64, count=n)
    seg_entry = np.asarray(seg_entry, dtype=np.int64)
    seg_area = np.asarray(seg_area, dtype=np.int64)
    pix = np.bincount(seg_entry, weights=seg_area, minlength=n)
    pos = seg_area > 0
    area_sum = np.bincount(seg_entry, weights=np.where(pos, seg_area, 0), minlength=n)
    area_n = np.bincount(seg_entry, weights=pos, minlength=n)
    area = np.where(area_n > 0, area_sum / np.where(area_n > 0, area_n, 1), 0.0)
    if is_gt:
        _field_areas(area, src_e, length)
    first = np.searchsorted(seg_entry, np.arange(n + 1))
    run_at = np.append(np.asarray(seg_run0, dtype=np.int64), len(starts))
    return Tracks(key=np.array(keys, dtype=np.int64), video=video, category=cat, extra=extra,
                  area=area, pix=pix, length=length, hw=hw, r0=run_at[first[:-1]],
                  r1=run_at[first[1:]], seg_track=seg_entry,
                  seg_frame=np.asarray(seg_frame, dtype=np.int64), seg_area=seg_area,
                  seg_ext0=np.asarray(seg_ext0, dtype=np.int64),
                  seg_ext1=np.asarray(seg_ext1, dtype=np.int64), starts=starts,
                  ends=ends)  # fmt: skip


def _exact_tracks(entries, decoded, videos, ranks, src, is_gt) -> Tracks:
    """Tracks of the output of ``decode_entries`` (the exact path)."""
    seg_entry, seg_frame, seg_area, seg_ext0, seg_ext1, seg_run0, starts, ends = (
        [] for _ in range(8)
    )
    nrun = 0
    for slot, (key, frames, s_area, r_start, r_len) in enumerate(decoded):
        h, w, _length = videos[src[key]["video_id"]]
        hw = h * w
        pos = s_area > 0
        fr = np.asarray(frames)[pos]
        lo = np.searchsorted(r_start, fr * hw)
        hi = np.searchsorted(r_start, (fr + 1) * hw)
        r_end = r_start + r_len
        seg_entry.append(np.full(len(fr), slot, dtype=np.int64))
        seg_frame.append(fr)
        seg_area.append(np.asarray(s_area)[pos])
        seg_ext0.append(r_start[lo])
        seg_ext1.append(r_end[hi - 1])
        seg_run0.append(lo + nrun)
        starts.append(r_start)
        ends.append(r_end)
        nrun += len(r_start)

    def cat(parts):
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    return _make_tracks(entries, videos, ranks, src, is_gt, cat(seg_entry), cat(seg_frame),
                        cat(seg_area), cat(seg_ext0), cat(seg_ext1), cat(seg_run0), cat(starts),
                        cat(ends))  # fmt: skip


# ----------------------------------------------------------------------------- the fast path
# Valid inputs take this path: a few C-level passes over the Python objects and numpy passes over
# all the count strings and lists at once, no per-mask numpy call. Anything unusual (a bad
# character, an empty string, a size mismatch, an overlong number, a negative or too-large run
# length, polygons with problems ...) makes it give up (None); the exact path (``decode_entries``)
# then validates again and describes every problem, or decodes what the fast path was too
# conservative to accept.
#
# The run lengths c[0], c[1], ... of every segmentation (background first) are padded with a 0 to
# an even number and kept as two columns, ``even`` = c[0], c[2], ... and ``odd`` = c[1], c[3], ...
# (row r: the background run before foreground run r, and that run): run r then ends at the
# cumulative sum of even + odd up to row r and starts odd[r] before.
_VALID_CHARS = bytes(range(48, 112))
_FAST_MAX_CHARS = 7  # 35 bits: more than any run length < 2**32 needs in the minimal encoding
_PAD, _NO_PAD = [0], []


def _fast_strings(buf: bytes, lens: np.ndarray):
    """Run lengths of compressed count strings joined in ``buf`` (``lens``: their lengths;
    pycocotools' ``rleFrString``, vectorised): ``(even, odd, pairs, padded)``, the two columns of
    every string's run lengths (see above) end to end, ``pairs[i]`` rows for string i, and
    ``padded[i]``: a 0 was added. None when some string is malformed or unusual (the caller then
    takes the exact path)."""
    if len(lens) == 0:
        z = np.zeros(0, np.int64)
        return z, z.copy(), z.copy(), np.zeros(0, dtype=bool)
    if lens.min() == 0 or buf.translate(None, _VALID_CHARS):
        return None
    a = np.frombuffer(buf, dtype=np.uint8)
    cum = np.cumsum(lens)
    if a[cum - 1].max() >= 80:  # ends inside a number ('0' + 0x20: a continuation character)
        return None
    cont = a >= 80
    cpos = np.flatnonzero(cont)  # continuation characters: numbers of several characters
    nums = lens - np.diff(np.searchsorted(cpos, cum), prepend=0)
    num_end = np.cumsum(nums)
    padded = (nums & 1).astype(bool)
    last = a[~cont] if len(cpos) else a  # the last character of every number
    pad_at = num_end[padded]
    if len(pad_at):  # a '0' (the number 0) after each string with an odd count of numbers
        last = np.insert(last, pad_at, 48)
    even, odd = last[0::2].astype(np.int64), last[1::2].astype(np.int64)
    for col in (even, odd):  # the signed 5-bit value of a one-character number
        col -= 48
        col ^= 16
        col -= 16
    if len(cpos):  # low 5-bit groups first, the sign on the last character
        num = cpos - np.arange(len(cpos))  # the number each continuation character belongs to
        new = np.empty(len(cpos), dtype=bool)
        new[0] = True
        np.not_equal(num[1:], num[:-1], out=new[1:])
        first = np.flatnonzero(new)
        k = np.diff(first, append=len(cpos))
        if k.max() >= _FAST_MAX_CHARS:
            return None
        j = np.arange(len(cpos)) - np.repeat(first, k)
        low = np.add.reduceat((a[cpos].astype(np.int64) - 80) << (5 * j), first)
        num = num[first]
        if len(pad_at):
            num += np.searchsorted(pad_at, num, side="right")
        for col, sel in ((even, (num & 1) == 0), (odd, (num & 1) == 1)):
            row = num[sel] >> 1
            col[row] = (col[row] << (5 * k[sel])) + low[sel]
    # delta coding: c[i] = v[i] + c[i-2] from a string's fourth number on, i.e. a cumulative sum
    # down each column, restarted at every string's first row (the previous string's total taken
    # off there); c[0] is not part of the running sum (c[2] = v[2]); padding numbers are 0.
    pairs = (nums + padded) >> 1
    row0 = np.cumsum(pairs) - pairs
    c0 = even[row0]
    even[row0] = 0
    for col in (even, odd):
        tot = np.add.reduceat(col, row0)
        col[row0[1:]] -= tot[:-1]
        np.cumsum(col, out=col)
    even[row0] = c0
    odd[row0[padded] + pairs[padded] - 1] = 0
    if (int(np.bitwise_or.reduce(even)) | int(np.bitwise_or.reduce(odd))) >> 32:
        return None  # a negative or too-large run length
    return even, odd, pairs, padded


def _fast_lists(lists: List[list]):
    """``(even, odd, pairs, padded)`` of uncompressed count lists as for ``_fast_strings``, or
    None when one is empty or not all non-negative ints below 2**32 (the exact path then describes
    it)."""
    lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    if len(lens) and lens.min() == 0:
        return None
    padded = (lens & 1).astype(bool)
    pads = [_PAD if p else _NO_PAD for p in padded.tolist()]
    flat = itertools.chain.from_iterable(zip(lists, pads, strict=True))
    try:  # ints only (floats, None, strings ... raise), as int64
        arr = np.frombuffer(array.array("q", list(itertools.chain.from_iterable(flat))), np.int64)
    except (TypeError, OverflowError):
        return None
    # a negative or too-large run length; or all run lengths 0 or 1: maybe bools, which array
    # takes as ints (the exact path decides)
    if arr.size and (int(np.bitwise_or.reduce(arr)) >> 32 or arr.max() <= 1):
        return None
    return arr[0::2].copy(), arr[1::2].copy(), (lens + padded) >> 1, padded


def _join(is_second, first, second):
    """Rows of two decoded sets (``first`` and ``second`` as returned by ``_fast_strings``) in
    segmentation order (``is_second``)."""
    n = len(is_second)
    pairs = np.empty(n, dtype=np.int64)
    padded = np.empty(n, dtype=bool)
    pairs[~is_second], pairs[is_second] = first[2], second[2]
    padded[~is_second], padded[is_second] = first[3], second[3]
    row_end = [np.append(np.cumsum(d[2]), 0) for d in (first, second)]  # [-1]: 0
    change = np.flatnonzero(is_second[1:] != is_second[:-1]) + 1
    rank = np.cumsum(is_second) - is_second  # segmentations of the second set before each
    even, odd = [], []
    for a, b in zip(np.r_[0, change].tolist(), np.r_[change, n].tolist(), strict=True):
        s = int(is_second[a])
        i0 = int(rank[a]) if s else a - int(rank[a])
        lo, hi = row_end[s][i0 - 1], row_end[s][i0 + b - a - 1]
        src = (first, second)[s]
        even.append(src[0][lo:hi])
        odd.append(src[1][lo:hi])
    return np.concatenate(even), np.concatenate(odd), pairs, padded


def _fast_tracks(entries, videos, ranks, allow_polygons: bool, src, is_gt: bool):
    """Tracks of ``entries`` ((key, where, video_id, segs) as for ``decode_entries``), or None
    when the fast path does not accept them all."""
    n_e = len(entries)
    info = [videos[e[2]] for e in entries]
    h_e = np.fromiter(map(operator.itemgetter(0), info), dtype=np.int64, count=n_e)
    w_e = np.fromiter(map(operator.itemgetter(1), info), dtype=np.int64, count=n_e)
    len_e = np.fromiter(map(operator.itemgetter(2), info), dtype=np.int64, count=n_e)
    flat = list(itertools.chain.from_iterable(map(operator.itemgetter(3), entries)))
    n = len(flat)
    present = np.fromiter(map(operator.is_not, flat, itertools.repeat(None)), dtype=bool, count=n)
    segs = list(itertools.compress(flat, present))
    seg_entry = np.repeat(np.arange(n_e, dtype=np.int64), len_e)[present]
    seg_frame = (np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(len_e) - len_e, len_e))[present]
    z = np.zeros(0, np.int64)
    if not segs:
        return _make_tracks(entries, videos, ranks, src, is_gt, z, z, z, z, z, z, z, z)
    types = set(map(type, segs))
    if types != {dict}:
        if not (allow_polygons and types <= {dict, list}):
            return None
        for i in np.flatnonzero([type(s) is list for s in segs]).tolist():
            h, w = int(h_e[seg_entry[i]]), int(w_e[seg_entry[i]])
            if polygon_problem(segs[i], h, w) is not None:
                return None
            rle = mask_util.merge(mask_util.frPyObjects(segs[i], h, w))
            segs[i] = {"size": [h, w], "counts": rle["counts"]}
    try:
        sizes = list(map(operator.itemgetter("size"), segs))
        counts = list(map(operator.itemgetter("counts"), segs))
    except KeyError:
        return None
    # sizes: lists of two ints equal to the video's [h, w]
    if set(map(type, sizes)) != {list}:
        return None
    if set(map(type, itertools.chain.from_iterable(sizes))) != {int}:
        return None
    frame_size = [[h, w] for h, w, _ in info]
    if sizes != [frame_size[e] for e in seg_entry.tolist()]:
        return None
    ctypes = list(map(type, counts))
    kinds = set(ctypes)
    if not kinds <= {str, bytes, list}:
        return None
    is_list = None
    if list in kinds and len(kinds) > 1:
        is_list = np.fromiter(map(operator.is_, ctypes, itertools.repeat(list)), dtype=bool,
                              count=len(ctypes))  # fmt: skip
        comp = list(itertools.compress(counts, ~is_list))
        lists = list(itertools.compress(counts, is_list))
    elif list in kinds:
        comp, lists = [], counts
    else:
        comp, lists = counts, []
    decoded = []
    if comp:
        try:
            if bytes not in kinds:
                buf = "".join(comp).encode("ascii")
                lens = np.fromiter(map(len, comp), dtype=np.int64, count=len(comp))
            else:
                bufs = [c.encode("ascii") if type(c) is str else c for c in comp]
                buf = b"".join(bufs)
                lens = np.fromiter(map(len, bufs), dtype=np.int64, count=len(bufs))
        except UnicodeEncodeError:
            return None
        decoded.append(_fast_strings(buf, lens))
    if lists:
        decoded.append(_fast_lists(lists))
    if any(d is None for d in decoded):
        return None
    even, odd, pairs, padded = _join(is_list, *decoded) if len(decoded) == 2 else decoded[0]
    # runs: one cumulative sum, each segmentation's first run length shifted so that it starts
    # at its frame's offset (frame * h * w); its total must end the frame
    row0 = np.cumsum(pairs) - pairs
    hw = (h_e * w_e)[seg_entry]
    start = seg_frame * hw
    end = start + hw
    shift = start.copy()
    shift[1:] -= end[:-1]
    even[row0] += shift
    even += odd
    ends = np.cumsum(even, out=even)
    last = row0 + pairs - 1
    if not np.array_equal(ends[last], end):
        return None
    starts = ends - odd
    seg_area = np.add.reduceat(odd, row0)
    last -= padded & (pairs >= 2)  # a padding run is empty: the one before
    return _make_tracks(entries, videos, ranks, src, is_gt, seg_entry, seg_frame, seg_area,
                        starts[row0], ends[last], row0, starts, ends)  # fmt: skip


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
        if type(vid) is not int and not is_int(vid) or vid not in videos:
            problems.append("{}: unknown video_id {!r}".format(where, vid))
            continue
        good = True
        cat = r["category_id"]
        if type(cat) is not int and not is_int(cat) or cat not in cats:
            problems.append("{}: unknown category_id {!r}".format(where, cat))
            good = False
        s = r["score"]
        if not (type(s) is float and math.isfinite(s)) and not is_number(s):
            problems.append("{}: score must be a finite number, got {!r}".format(where, s))
            good = False
        segs = r["segmentations"]
        if type(segs) is not list:
            problems.append("{}: 'segmentations' must be a list, got {}".format(
                where, type(segs).__name__))  # fmt: skip
            continue
        bad = frames_problem("segmentations", segs, videos[vid][2])
        if bad:
            problems.append("{}: {}".format(where, bad))
            continue
        if good:
            out.append((i, where, vid, segs))
        else:  # its segmentations are still checked
            out.append((-1 - i, where, vid, segs))
    return out




class Parsed:
    """videos {id: (h, w, length)}, categories {id: name}, gt and dt: ``Tracks``."""

    def __init__(self, videos, cats, gt: Tracks, dt: Tracks):
        self.videos, self.cats, self.gt, self.dt = videos, cats, gt, dt


def _shorten(message: str) -> str:
    """``message`` with every run of more than 40 digits (a 400-digit number quoted back)
    abridged to its first digits and its length, and kept under 1000 characters."""
    message = re.sub(r"\d{41,}", lambda m: "{}...({} digits)".format(m[0][:8], len(m[0])),
                     message)
    return message if len(message) <= 1000 else message[:997] + "..."


def parse(gt: Any, results: Any = None, *, need_annotations: bool = True,
          max_problems: int = 0):  # fmt: skip
    """Validate and decode ``gt`` (and ``results`` unless None).

    Returns ``(gt_problems, results_problems, Parsed or None)``. The GT is checked first; with a
    broken GT the results are not looked at. ``max_problems`` > 0 stops after that many.
    """
    def cut(p):
        return [_shorten(m) for m in (p[:max_problems] if max_problems > 0 else p)]

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
        bad = frames_problem("segmentations", segs, videos[ann["video_id"]][2])
        if bad:
            problems.append("{}: {}".format(where, bad))
            continue
        gt_entries.append((i, where, ann["video_id"], segs))
    ranks = tuple({k: i for i, k in enumerate(sorted(d))} for d in (videos, cats))
    gts = None if problems else _fast_tracks(gt_entries, videos, ranks, True, anns, True)
    if gts is None:  # the exact path: describes every problem
        if not (max_problems > 0 and len(problems) >= max_problems):
            gt_dec = decode_entries(gt_entries, videos, True, problems, max_problems)
        if problems:
            return cut(problems), [], None
        gts = _exact_tracks(gt_entries, gt_dec, videos, ranks, anns, True)
    res_problems: List[str] = []
    res_entries = []
    if results is not None:
        if not isinstance(results, list):
            res_problems.append("results must be a JSON list of entries, got {}".format(
                type(results).__name__))  # fmt: skip
        else:
            res_entries = _result_entries(results, videos, cats, res_problems)
    dts = None if res_problems else _fast_tracks(res_entries, videos, ranks, False, results, False)
    if dts is None:
        if not (max_problems > 0 and len(res_problems) >= max_problems):
            dt_dec = decode_entries(res_entries, videos, False, res_problems, max_problems)
        if res_problems:
            return [], cut(res_problems), None
        dts = _exact_tracks(res_entries, dt_dec, videos, ranks, results, False)
    return [], [], Parsed(videos, cats, gts, dts)
