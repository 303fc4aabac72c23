#!/usr/bin/env python
"""Speed of the YouTube-VIS evaluator on a 300-video synthetic set, and its agreement with the
hand-checkable cases of docs/evaluation.md.

1. **Ground truth**: the project's synthetic generator
   (``maskprop_d2.data.synthetic.generate_synthetic_dataset``) writes N val videos, N the largest
   of ``--sizes`` (300), and the single train video it insists on, into a folder of
   ``--cache-dir`` (default ``output/bench_evaluator``) named after the settings; a later run with
   the same settings reuses it. The JPEG frames are deleted right after generation (the evaluator
   only needs ``valid.json``).
2. **Predictions** (seeded, one random stream per video, so a subset of the videos gets the same
   predictions whatever N is): per GT track a prediction with perturbed masks
   (global shift + per-frame jitter, dilation or erosion, a run of dropped frames, occlusion gaps
   filled, frames added past the track's ends), some class swaps, some duplicates, a few misses,
   scores that grow with the prediction's quality; plus false positives up to
   ``--min-preds``..``--max-preds`` predictions per video (another track's masks shifted in time,
   fragments of a track, moving blobs on the background). Written as a YouTube-VIS results JSON
   (compressed RLE with str counts, ``null`` where absent; pycocotools encodes) next to the GT and
   reused by later runs with the same settings (``--rebuild-predictions`` forces a rebuild).
3. **Timing**: ``maskprop_d2.evaluation.ytvis_eval.evaluate(gt, results)`` in-process on the first
   25/50/100/200/300 videos (GT and results restricted to them), ``--repeats`` times each, taken
   round-robin over the sizes (JSON already loaded); unprofiled timings of the parsing phases
   (private helpers) and a cProfile breakdown of one run on all videos; then the CLI
   ``python -m maskprop_d2.evaluation GT RESULTS --json OUT`` on all videos (a fresh process:
   interpreter start, imports, JSON loading, scoring, printing), its ``--check`` mode, and
   ``--help`` (start-up and imports only). The CLI's stats must equal the in-process ones.
4. **Agreement**: the hand-checkable cases of docs/evaluation.md (64x64, 4 frames, a 20x20 GT
   square in frames 0-2, absent in frame 3) built here and scored with the project's evaluator,
   expected vs got; an independent dense numpy video IoU (decode, sum intersections and unions
   over frames) against ``video_iou`` (per pair) and ``video_ious`` (per video matrix) on all
   (prediction, GT) pairs of ``--iou-check-videos`` sampled videos; GT fed back as predictions
   must give AP 1.0.
   The script exits with status 1 if any check fails (after writing its outputs).

Run it with one thread (``OMP_NUM_THREADS=1``) on a quiet machine; the load average is recorded
before and after.

Usage::

    OMP_NUM_THREADS=1 python tools/bench_evaluator.py --out benchmarks/evaluator_cpu.md
    OMP_NUM_THREADS=1 python tools/bench_evaluator.py --sizes 25 50 100 --repeats 2
    OMP_NUM_THREADS=1 python tools/bench_evaluator.py --height 480 --width 640 \
        --out /tmp/evaluator_640x480.md          # a larger resolution (own cache entry)

Generating the set is the slow part of a first run (300 videos: ~20 s at 128x96, about 2.5 s per
video at 640x480 on a 2-core machine); it is cached, and so are the predictions.

``--plot`` defaults to the ``--out`` path with ``.png``.
"""

import argparse
import cProfile
import datetime
import importlib.metadata
import json
import os
import platform
import pstats
import shlex
import shutil
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np
import pycocotools.mask as mask_util

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_common import cpu_model  # noqa: E402

from maskprop_d2.data.synthetic import generate_synthetic_dataset  # noqa: E402
from maskprop_d2.evaluation import ytvis_eval  # noqa: E402
from maskprop_d2.evaluation.results_io import check_results  # noqa: E402
from maskprop_d2.evaluation.ytvis_eval import evaluate, video_iou, video_ious  # noqa: E402

TOL = 1e-9
# spatial perturbation at 96-pixel frames (scaled with the frame size): global shift sigma and
# per-frame jitter (both times 1 - quality), and the dilation/erosion kernel (3x3)
SHIFT_PX = 2.0
PRED_VERSION = 1  # bump when the prediction builder changes (cached results files are keyed on it)
JITTER_PX = 1.0


# ----------------------------------------------------------------------------- ground truth
def dataset_dir(args):
    name = "synthetic_val{}_L{}_{}x{}_seed{}".format(
        args.num_videos, args.length, args.width, args.height, args.seed
    )
    return os.path.join(os.path.abspath(args.cache_dir), name)


def build_gt(args):
    """Generate (or reuse) the synthetic GT; returns (path of valid.json, seconds, reused)."""
    root = dataset_dir(args)
    path = os.path.join(root, "valid.json")
    if os.path.isfile(path):
        return path, 0.0, True
    t0 = time.perf_counter()
    generate_synthetic_dataset(
        root,
        num_train=1,  # the generator's minimum
        num_val=args.num_videos,
        length=args.length,
        height=args.height,
        width=args.width,
        seed=args.seed,
        overwrite=os.path.exists(root),
    )
    for split in ("train", "valid"):  # frames are not needed for evaluation
        shutil.rmtree(os.path.join(root, split), ignore_errors=True)
    return path, time.perf_counter() - t0, False


# ----------------------------------------------------------------------------- predictions
def encode_track(masks, present):
    """(L, H, W) bool masks + (L,) presence -> segmentations list (str counts, None = absent)."""
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    out = []
    for r, p in zip(rles, present, strict=True):
        if p:
            out.append({"size": [int(s) for s in r["size"]], "counts": r["counts"].decode()})
        else:
            out.append(None)
    return out


def decode_track(segs, h, w):
    """Segmentations list -> ((L, H, W) bool masks, (L,) presence)."""
    masks = np.zeros((len(segs), h, w), dtype=bool)
    present = np.array([s is not None for s in segs])
    for t, s in enumerate(segs):
        if s is not None:
            masks[t] = mask_util.decode(s).astype(bool)
    return masks, present


def shift2d(m, dy, dx):
    """Shift an (H, W) mask by (dy, dx) pixels, zero fill."""
    h, w = m.shape
    out = np.zeros_like(m)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = m[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def perturb(rng, masks, present, quality, scale):
    """Spatially perturbed copy of a track: global shift, per-frame jitter, dilate/erode."""
    bad = 1.0 - quality
    dy, dx = np.rint(rng.normal(0.0, bad * SHIFT_PX * scale, 2)).astype(int)
    jitter = int(round(bad * JITTER_PX * scale))
    p_morph = 0.25 * bad  # each of dilate / erode
    op = rng.choice(["none", "dilate", "erode"], p=[1 - 2 * p_morph, p_morph, p_morph])
    k = 1 + 2 * max(1, int(round(scale)))
    kernel = np.ones((k, k), np.uint8)
    out = np.zeros_like(masks)
    for t in np.flatnonzero(present):
        jy, jx = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
        m = shift2d(masks[t], int(dy + jy), int(dx + jx)).astype(np.uint8)
        if op == "dilate":
            m = cv2.dilate(m, kernel)
        elif op == "erode":
            m = cv2.erode(m, kernel)
        out[t] = m.astype(bool)
    return out


def finish(masks, present):
    """Frames whose mask became empty are absent; None if nothing is left."""
    present = present & masks.reshape(len(masks), -1).any(1)
    return (masks, present) if present.any() else None


def track_prediction(rng, masks, present, quality, scale):
    """A model-like prediction of one GT track (see the module docstring)."""
    L = len(present)
    m = perturb(rng, masks, present, quality, scale)
    pres = present.copy()
    idx = np.flatnonzero(pres)
    if len(idx) > 1 and rng.random() < 0.25:  # drop a run of frames
        n = int(rng.integers(1, min(3, len(idx) - 1) + 1))
        s = int(rng.integers(0, len(idx) - n + 1))
        pres[idx[s : s + n]] = False
    first, last = idx[0], idx[-1]
    if rng.random() < 0.5:  # fill occlusion gaps with the previous mask
        for t in range(first + 1, last):
            if not present[t] and pres[t - 1]:
                m[t], pres[t] = m[t - 1], True
    if rng.random() < 0.25:  # the track goes on past its end (or starts early)
        n = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            for t in range(last + 1, min(L, last + 1 + n)):
                m[t], pres[t] = m[last], True
        else:
            for t in range(first - 1, max(-1, first - 1 - n), -1):
                m[t], pres[t] = m[first], True
    m[~pres] = False
    return finish(m, pres)


def blob_prediction(rng, L, h, w):
    """A moving ellipse on the background for a random span of frames."""
    d = min(h, w)
    ax = (int(rng.uniform(0.03, 0.15) * d) + 1, int(rng.uniform(0.03, 0.15) * d) + 1)
    pos = rng.uniform([0, 0], [w, h])
    vel = rng.normal(0, 0.02 * d, 2)
    n = int(rng.integers(3, L + 1))
    start = int(rng.integers(0, L - n + 1))
    masks = np.zeros((L, h, w), dtype=bool)
    pres = np.zeros(L, dtype=bool)
    for t in range(start, start + n):
        m = np.zeros((h, w), np.uint8)
        c = pos + vel * (t - start)
        cv2.ellipse(m, (int(c[0]), int(c[1])), ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        masks[t], pres[t] = m.astype(bool), True
    return finish(masks, pres)


def video_predictions(seed, video, anns, cat_ids, min_preds, max_preds):
    """Deterministic predictions of one video (its own random stream)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7, int(video["id"])]))
    h, w, L = int(video["height"]), int(video["width"]), int(video["length"])
    scale = min(h, w) / 96.0
    tracks = [(a["category_id"],) + decode_track(a["segmentations"], h, w) for a in anns]
    preds = []  # (category_id, score, masks, present)

    def other_cat(c):
        return int(rng.choice([x for x in cat_ids if x != c]))

    for cat, masks, present in tracks:
        if rng.random() < 0.07:  # missed
            continue
        q = float(rng.uniform(0.0, 1.0))
        p = track_prediction(rng, masks, present, q, scale)
        if p is None:
            continue
        score = float(np.clip(0.25 + 0.7 * q + rng.normal(0, 0.08), 0.02, 0.99))
        c = cat
        if rng.random() < 0.1:  # class swap
            c, score = other_cat(cat), score * 0.6
        preds.append((c, score) + p)
        if rng.random() < 0.15:  # a duplicate of lower quality
            p2 = track_prediction(rng, masks, present, q * 0.5, scale)
            if p2 is not None:
                preds.append((cat, score * 0.5) + p2)
    n_total = int(rng.integers(min_preds, max_preds + 1))
    tries = 0
    while len(preds) < n_total and tries < 4 * max_preds:
        tries += 1
        kind = rng.choice(["time_shift", "fragment", "blob"], p=[0.4, 0.3, 0.3])
        score = float(0.01 + 0.8 * rng.beta(2, 5))
        if kind != "blob" and tracks:
            cat, masks, present = tracks[int(rng.integers(len(tracks)))]
            if kind == "time_shift":
                s = int(rng.integers(3, max(4, L // 2 + 1))) * int(rng.choice([-1, 1]))
                m = np.zeros_like(masks)
                pr = np.zeros_like(present)
                src = slice(max(0, -s), L - max(0, s))
                dst = slice(max(0, s), L - max(0, -s))
                m[dst], pr[dst] = masks[src], present[src]
            else:
                idx = np.flatnonzero(present)
                n = int(rng.integers(1, min(6, len(idx)) + 1))
                s = int(rng.integers(0, len(idx) - n + 1))
                m, pr = np.zeros_like(masks), np.zeros_like(present)
                keep = idx[s : s + n]
                m[keep], pr[keep] = masks[keep], True
            if not pr.any():
                continue
            p = finish(perturb(rng, m, pr, float(rng.uniform(0.3, 1.0)), scale), pr)
            if kind == "time_shift" and rng.random() < 0.3:
                cat = other_cat(cat)
        else:
            cat = int(rng.choice(cat_ids))
            p = blob_prediction(rng, L, h, w)
        if p is not None:
            preds.append((cat, score) + p)
    out = []
    for i in rng.permutation(len(preds)):
        c, s, m, pr = preds[i]
        out.append(
            {
                "video_id": int(video["id"]),
                "category_id": int(c),
                "score": round(float(s), 6),
                "segmentations": encode_track(m, pr),
            }
        )
    return out


def build_predictions(gt, args):
    by_video = {}
    for a in gt["annotations"]:
        by_video.setdefault(a["video_id"], []).append(a)
    cat_ids = sorted(c["id"] for c in gt["categories"])
    results = []
    for v in gt["videos"]:
        results += video_predictions(
            args.seed, v, by_video.get(v["id"], []), cat_ids, args.min_preds, args.max_preds
        )
    return results


def subset(gt, results, n):
    videos = gt["videos"][:n]
    keep = {v["id"] for v in videos}
    g = dict(gt, videos=videos, annotations=[a for a in gt["annotations"] if a["video_id"] in keep])
    return g, [r for r in results if r["video_id"] in keep]


# ----------------------------------------------------------------------------- timing
def time_evaluate(gt, results, sizes, repeats):
    """Round-robin over the sizes (repeat r of every size, then repeat r + 1), so that a change
    of the machine's load during the run affects every size alike."""
    subs = {n: subset(gt, results, n) for n in sizes}
    secs = {n: [] for n in sizes}
    stats = {}
    for rep in range(repeats):
        for n in sizes:
            t0 = time.perf_counter()
            res = evaluate(*subs[n])
            secs[n].append(time.perf_counter() - t0)
            stats[n] = res.as_dict()
            print("evaluate  repeat {}  N={:4d}  {:7.3f} s".format(rep + 1, n, secs[n][-1]),
                  flush=True)  # fmt: skip
    rows = []
    for n in sizes:
        g, r = subs[n]
        med = statistics.median(secs[n])
        rows.append(
            dict(
                n=n,
                gt_tracks=len(g["annotations"]),
                preds=len(r),
                secs=secs[n],
                min=min(secs[n]),
                median=med,
                ms_per_video=1000 * med / n,
                ms_per_video_min=1000 * min(secs[n]) / n,
                stats=stats[n],
            )
        )
    return rows


PROFILE_FUNCS = [  # (key, file, function, label, self time instead of cumulative)
    ("total", "ytvis_eval.py", "evaluate", "evaluate (total)", False),
    ("loop", "ytvis_eval.py", "evaluate", "  evaluate self time (loop over categories x videos)",
     True),
    ("parse_gt", "ytvis_eval.py", "_parse_gt", "_parse_gt (GT validation + tracks)", False),
    ("parse_results", "ytvis_eval.py", "_parse_results",
     "_parse_results (check_results + tracks + sort)", False),
    ("check", "results_io.py", "check_results", "  check_results (results validation)", False),
    ("segprob", "results_io.py", "segmentation_problems",
     "  segmentation_problems (GT + results)", False),
    ("rle_totals", "results_io.py", "rle_totals", "  rle_totals (vectorised RLE decode)", False),
    ("make_track", "ytvis_eval.py", "_make_track", "  _make_track (RLE dicts, mask_util.area)",
     False),
    ("ious", "ytvis_eval.py", "video_ious", "video_ious", False),
    ("ious_self", "ytvis_eval.py", "video_ious",
     "  video_ious self time (incl. pycocotools iou, C)", True),
    ("match", "ytvis_eval.py", "_match", "_match (greedy matching, 4 area ranges)", False),
    ("accumulate", "ytvis_eval.py", "_accumulate", "_accumulate", False),
]  # fmt: skip


def phase_times(gt, results, repeats):
    """Unprofiled seconds (min of repeats) of evaluate's parsing phases, on the private helpers."""
    out = dict(parse_gt=[], check=[], parse_results=[])
    for _ in range(repeats):
        t0 = time.perf_counter()
        videos, _cats, _gts = ytvis_eval._parse_gt(gt)
        t1 = time.perf_counter()
        check_results(gt, results, allow_uncompressed=True)
        t2 = time.perf_counter()
        ytvis_eval._parse_results(gt, results, videos)
        t3 = time.perf_counter()
        out["parse_gt"].append(t1 - t0)
        out["check"].append(t2 - t1)
        out["parse_results"].append(t3 - t2)
    return {k: min(v) for k, v in out.items()}


def profile_evaluate(gt, results):
    prof = cProfile.Profile()
    prof.enable()
    evaluate(gt, results)
    prof.disable()
    st = pstats.Stats(prof).stats
    rows = []
    for key, fname, func, label, self_time in PROFILE_FUNCS:
        ncalls, cum = 0, 0.0
        for (f, _line, name), (_cc, nc, tt, ct, _callers) in st.items():
            if name == func and os.path.basename(f) == fname:
                ncalls += nc
                cum += tt if self_time else ct
        rows.append(dict(key=key, label=label, ncalls=ncalls, cum=cum))
    total = rows[0]["cum"] or 1.0
    for r in rows:
        r["pct"] = 100.0 * r["cum"] / total
    return rows


def run_cli(argv, repeats):
    """Wall seconds of ``python -m maskprop_d2.evaluation ARGV`` (fresh process each time)."""
    cmd = [sys.executable, "-m", "maskprop_d2.evaluation"] + argv
    secs, proc = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        secs.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
            raise SystemExit("CLI failed: " + " ".join(cmd))
    return secs, proc


# ----------------------------------------------------------------------------- agreement
def dense_video_iou(dsegs, gsegs, h, w):
    """Video IoU per docs/evaluation.md with decoded masks: I and U summed over frames."""
    inter = union = 0
    for d, g in zip(dsegs, gsegs, strict=True):
        if d is None and g is None:
            continue
        dm = mask_util.decode(d).astype(bool) if d is not None else None
        gm = mask_util.decode(g).astype(bool) if g is not None else None
        if dm is not None and gm is not None:
            inter += int(np.count_nonzero(dm & gm))
            union += int(np.count_nonzero(dm | gm))
        else:
            union += int(np.count_nonzero(dm if dm is not None else gm))
    return inter / union if union > 0 else 0.0


def rle(m):
    r = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode()}


def box(y0, y1, x0, x1, size=64):
    m = np.zeros((size, size), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def hand_cases():
    """docs/evaluation.md: (name, GT dict, detections, expected {quantity: value})."""
    sq = rle(box(10, 30, 10, 30))
    half = rle(box(10, 30, 10, 20))  # 20 rows x 10 columns
    far = rle(box(40, 60, 40, 60))  # disjoint from the GT square
    gt_segs = [sq, sq, sq, None]
    gt = {
        "videos": [
            {"id": 1, "height": 64, "width": 64, "length": 4,
             "file_names": ["v/{:05d}.jpg".format(t) for t in range(4)]}
        ],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": gt_segs,
             "areas": [400.0, 400.0, 400.0, None],
             "bboxes": [[10.0, 10.0, 20.0, 20.0]] * 3 + [None]}
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }  # fmt: skip

    def det(segs, cat=1, score=0.9):
        return {"video_id": 1, "category_id": cat, "score": score, "segmentations": segs}

    cases = [
        ("identical, absent in frame 3", [det([sq, sq, sq, None])],
         {"video IoU": [1.0], "AP": 1.0, "AP50": 1.0, "AP75": 1.0}),
        ("identical + a mask in frame 3", [det([sq, sq, sq, sq])],
         {"video IoU": [0.75], "AP": 0.6, "AP50": 1.0, "AP75": 1.0}),
        ("half-area (20x10) masks", [det([half, half, half, None])],
         {"video IoU": [0.5], "AP": 0.1, "AP50": 1.0, "AP75": 0.0}),
        ("misses frame 2", [det([sq, sq, None, None])],
         {"video IoU": [2.0 / 3.0], "AP": 0.4, "AP50": 1.0, "AP75": 0.0}),
        ("wrong class", [det([sq, sq, sq, None], cat=2)],
         {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}),
        ("a false positive (score .9) above the true one (score .5)",
         [det([far, far, far, None], score=0.9), det([sq, sq, sq, None], score=0.5)],
         {"video IoU": [0.0, 1.0], "AP": 0.5, "AP50": 0.5, "AP75": 0.5, "AR1": 0.0,
          "AR10": 1.0}),
        ("empty results list (not in the table of docs/evaluation.md: zeros)", [],
         {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR1": 0.0, "AR10": 0.0}),
    ]  # fmt: skip
    return gt, cases


def check_hand_cases():
    gt, cases = hand_cases()
    rows = []
    for name, dets, expected in cases:
        stats = evaluate(gt, dets).as_dict()
        gsegs = gt["annotations"][0]["segmentations"]
        for q, exp in expected.items():
            if q == "video IoU":
                got = [video_iou(d["segmentations"], gsegs, 64, 64) for d in dets]
                dense = [dense_video_iou(d["segmentations"], gsegs, 64, 64) for d in dets]
                ok = all(abs(a - b) <= TOL for a, b in zip(got, exp, strict=True)) and all(
                    abs(a - b) <= TOL for a, b in zip(dense, exp, strict=True)
                )
                rows.append(dict(case=name, q=q, exp=exp, got=got, dense=dense, ok=ok))
            else:
                got = stats[q]
                rows.append(dict(case=name, q=q, exp=exp, got=got, dense=None,
                                 ok=abs(got - exp) <= TOL))  # fmt: skip
    return rows


def check_dense_iou(gt, results, n_videos, seed):
    """All (prediction, GT) pairs of n_videos sampled videos: dense numpy vs the project."""
    rng = np.random.default_rng(seed)
    vids = [v for v in gt["videos"]]
    pick = rng.choice(len(vids), size=min(n_videos, len(vids)), replace=False)
    anns, preds = {}, {}
    for a in gt["annotations"]:
        anns.setdefault(a["video_id"], []).append(a)
    for r in results:
        preds.setdefault(r["video_id"], []).append(r)
    n_pairs = n_nonzero = 0
    max_pair = max_matrix = 0.0
    t_dense = t_pair = t_matrix = 0.0
    for i in sorted(pick):
        v = vids[i]
        h, w = int(v["height"]), int(v["width"])
        g, d = anns.get(v["id"], []), preds.get(v["id"], [])
        if not g or not d:
            continue
        t0 = time.perf_counter()
        dense = np.array(
            [[dense_video_iou(x["segmentations"], y["segmentations"], h, w) for y in g] for x in d]
        )
        t1 = time.perf_counter()
        pair = np.array(
            [[video_iou(x["segmentations"], y["segmentations"], h, w) for y in g] for x in d]
        )
        t2 = time.perf_counter()
        # video_ious works on the evaluator's internal tracks (private _make_track)
        dt = [ytvis_eval._make_track(x["segmentations"], h, w) for x in d]
        gtr = [ytvis_eval._make_track(y["segmentations"], h, w, y.get("areas")) for y in g]
        matrix = video_ious(dt, gtr)
        t3 = time.perf_counter()
        t_dense += t1 - t0
        t_pair += t2 - t1
        t_matrix += t3 - t2
        n_pairs += dense.size
        n_nonzero += int(np.count_nonzero(dense > 0))
        max_pair = max(max_pair, float(np.abs(pair - dense).max()))
        max_matrix = max(max_matrix, float(np.abs(matrix - dense).max()))
    return dict(
        videos=len(pick), pairs=n_pairs, nonzero=n_nonzero, max_pair=max_pair,
        max_matrix=max_matrix, t_dense=t_dense, t_pair=t_pair, t_matrix=t_matrix,
        ok=max_pair <= TOL and max_matrix <= TOL and n_pairs > 0,
    )  # fmt: skip


def gt_as_predictions(gt, seed):
    rng = np.random.default_rng(seed)
    res = [
        {"video_id": a["video_id"], "category_id": a["category_id"],
         "score": float(rng.uniform(0.05, 1.0)), "segmentations": a["segmentations"]}
        for a in gt["annotations"]
    ]  # fmt: skip
    t0 = time.perf_counter()
    stats = evaluate(gt, res).as_dict()
    secs = time.perf_counter() - t0
    keys = ["AP", "AP50", "AP75", "AR10", "AR100"]
    return dict(stats=stats, secs=secs, keys=keys, ok=all(stats[k] == 1.0 for k in keys))


# ----------------------------------------------------------------------------- report
def machine_info():
    cpu = cpu_model()
    return dict(
        nproc=os.cpu_count(),
        cpu=cpu,
        platform=platform.platform(),
        python=platform.python_version(),
        numpy=np.__version__,
        pycocotools=importlib.metadata.version("pycocotools"),
        omp=os.environ.get("OMP_NUM_THREADS", "(unset)"),
    )


def linear_fit(rows):
    n = np.array([r["n"] for r in rows], dtype=np.float64)
    t = np.array([r["min"] for r in rows], dtype=np.float64)  # least disturbed by other load
    b, a = np.polyfit(n, t, 1)
    pred = a + b * n
    ss_res = float(((t - pred) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum()) or 1.0
    return a, b, 1.0 - ss_res / ss_tot


def plot(rows, fit, cli, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n"] for r in rows]
    a, b, r2 = fit
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(n, [r["min"] for r in rows], "o", color="C0", label="evaluate() in-process, min")
    ax.errorbar(n, [r["median"] for r in rows],
                yerr=[[0] * len(rows), [max(r["secs"]) - r["median"] for r in rows]],
                fmt="o", mfc="none", color="C0", capsize=3, alpha=0.6,
                label="median (bar to the max of {} repeats)".format(len(rows[0]["secs"])))
    xs = np.array([0, max(n)])
    fit_label = "line through the mins: {:.3f} s + {:.2f} ms/video (R² {:.4f})".format(
        a, 1000 * b, r2
    )
    ax.plot(xs, a + b * xs, "--", color="gray", label=fit_label)
    if cli is not None:
        cli_label = "CLI incl. start-up + JSON load ({:.2f} s)".format(cli["median"])
        ax.plot([cli["n"]], [cli["median"]], "s", color="C3", label=cli_label)
    ax.set_xlabel("videos")
    ax.set_ylabel("seconds")
    ax.set_xlim(0, max(n) * 1.05)
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.set_title("maskprop_d2 YouTube-VIS evaluator, synthetic GT (CPU)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def show_path(path):
    rel = os.path.relpath(os.path.abspath(path), REPO)
    return path if rel.startswith("..") else rel


def fmt(x, nd=4):
    if isinstance(x, list):
        return ", ".join(fmt(v, nd) for v in x)
    return "{:.{}f}".format(x, nd)


def render(args, d):
    info, rows, fit = d["info"], d["rows"], d["fit"]
    a, b, r2 = fit
    big = rows[-1]
    st = big["stats"]
    lines = [
        "# YouTube-VIS evaluator speed and agreement (CPU)",
        "",
        "Speed of `maskprop_d2.evaluation.ytvis_eval.evaluate` and of the CLI "
        "`python -m maskprop_d2.evaluation` on a {}-video **synthetic** set with model-like "
        "predictions, and agreement with the hand-checkable cases of docs/evaluation.md and an "
        "independent dense numpy video IoU.".format(args.num_videos),
        "",
        "- command: `{}`".format(d["command"]),
        "- date: {}".format(d["started"].strftime("%Y-%m-%d %H:%M UTC")),
        "- machine: {} CPUs ({}), {}".format(info["nproc"], info["cpu"], info["platform"]),
        "- python {}, numpy {}, pycocotools {}; OMP_NUM_THREADS={}".format(
            info["python"], info["numpy"], info["pycocotools"], info["omp"]
        ),
        "- load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; "
        "after: {:.2f} {:.2f} {:.2f}".format(*d["load_before"], *d["load_after"]),
        "- ground truth: `generate_synthetic_dataset(num_val={}, num_train=1, length={}, "
        "height={}, width={}, seed={})` (standard difficulty), {} videos, {} GT tracks, "
        "{} frames; {} (`{}`, JPEG frames deleted); GT JSON {:.1f} MiB".format(
            args.num_videos, args.length, args.height, args.width, args.seed, args.num_videos,
            d["n_gt"], args.num_videos * args.length,
            "reused from the cache" if d["gt_reused"]
            else "generated in {:.1f} s".format(d["gt_secs"]),
            show_path(d["gt_path"]), d["gt_mib"],
        ),  # fmt: skip
        "- predictions (seed {}, {}; `{}`): {} entries ({:.1f} per video, "
        "{}–{} requested), results JSON {:.1f} MiB; per GT track: 7 % missed, else a "
        "prediction with quality q ~ U(0, 1) driving a global shift (σ = (1−q)·2 px at 96 px), "
        "per-frame jitter (±(1−q)·1 px), dilation or erosion with a 3×3 kernel (each "
        "25 %·(1−q)), a dropped run of 1–3 frames (25 %), "
        "occlusion gaps filled (50 %), 1–3 frames added past an end (25 %), class swap (10 %), "
        "a lower-quality duplicate (15 %), score 0.25 + 0.7 q + noise; false positives up to the "
        "per-video count: another track's masks shifted 3–{} frames in time (40 %), a 1–6 frame "
        "fragment of a track (30 %), a moving ellipse (30 %), scores 0.01 + 0.8·Beta(2, 5)".format(
            args.seed,
            "reused from the cache" if d["pred_secs"] is None
            else "built in {:.1f} s".format(d["pred_secs"]),
            show_path(d["res_path"]), d["n_pred"], d["n_pred"] / args.num_videos,
            args.min_preds, args.max_preds, d["res_mib"], args.length // 2,
        ),  # fmt: skip
        "",
        "## In-process `evaluate(gt, results)` vs number of videos",
        "",
        "First N videos of the GT and their predictions; JSON already loaded; {} repeats each, "
        "taken round-robin over the sizes.".format(args.repeats),
        "",
        "| videos | GT tracks | predictions | min s | median s | max s | ms/video (min) "
        "| ms/video (median) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            "| {n} | {gt_tracks} | {preds} | {min:.3f} | {median:.3f} | {mx:.3f} | "
            "{ms_per_video_min:.2f} | {ms_per_video:.2f} |".format(mx=max(r["secs"]), **r)
        )
    ms = [r["ms_per_video_min"] for r in rows]
    lines += [
        "",
        "Least-squares line through the minimum times (the least disturbed by other load): "
        "{:.3f} s + {:.2f} ms/video, R² = {:.5f}; ms/video (min) ranges {:.2f}–{:.2f} "
        "(max/min {:.2f}); N = {} / N = {}: {:.2f}× the time for {:.0f}× the videos. "
        "Plot: `{}`.".format(
            a, 1000 * b, r2, min(ms), max(ms), max(ms) / min(ms), rows[-1]["n"], rows[0]["n"],
            rows[-1]["min"] / rows[0]["min"], rows[-1]["n"] / rows[0]["n"],
            show_path(d["plot_path"]) if d["plot_path"] else "(none)",
        ),  # fmt: skip
        "",
        "Stats of the {}-video run (percent): AP {:.2f}, AP50 {:.2f}, AP75 {:.2f}, "
        "AR1 {:.2f}, AR10 {:.2f} (APs {:.2f}, APm {}, APl {}, AR100 {:.2f}).".format(
            big["n"], 100 * st["AP"], 100 * st["AP50"], 100 * st["AP75"], 100 * st["AR1"],
            100 * st["AR10"], 100 * st["APs"],
            "{:.2f}".format(100 * st["APm"]) if st["APm"] > -1 else "undefined (−1)",
            "{:.2f}".format(100 * st["APl"]) if st["APl"] > -1 else "undefined (−1)",
            100 * st["AR100"],
        ),  # fmt: skip
        "",
        "### Where the time goes ({} videos)".format(big["n"]),
        "",
        "Unprofiled, min of {} runs of the evaluator's private phases on the same input; the "
        "rest is `evaluate` (min) minus the two parsing phases.".format(args.repeats),
        "",
        "| phase | seconds | % of evaluate |",
        "|---|---:|---:|",
    ]
    ph, tot = d["phases"], big["min"]
    rest = tot - ph["parse_gt"] - ph["parse_results"]
    for label, v in (
        ("`_parse_gt` (GT validation with `segmentation_problems`, tracks)", ph["parse_gt"]),
        ("`_parse_results` (results validation + tracks + sort)", ph["parse_results"]),
        ("&nbsp;&nbsp;of which `check_results(gt, results, allow_uncompressed=True)`",
         ph["check"]),
        ("rest: `video_ious`, `_match` (x4 area ranges), `_accumulate`, loop", rest),
        ("`evaluate` (total)", tot),
    ):  # fmt: skip
        lines.append("| {} | {:.3f} | {:.1f} |".format(label, v, 100 * v / tot))
    lines += [
        "",
        "One cProfile run: cumulative time per function (cProfile inflates Python-level overhead; "
        "the profiled total is {:.2f} s against {:.2f} s unprofiled, min). Indented rows are "
        "part of the row above them; \"self time\" excludes the Python functions it calls."
        .format(d["profile"][0]["cum"], big["min"]),
        "",
        "| function | calls | cumulative s | % of evaluate |",
        "|---|---:|---:|---:|",
    ]
    for p in d["profile"]:
        label = p["label"].replace("  ", "&nbsp;&nbsp;", 1) if p["label"].startswith("  ") else (
            p["label"]
        )
        lines.append("| {} | {} | {:.3f} | {:.1f} |".format(label, p["ncalls"], p["cum"], p["pct"]))
    cli = d["cli"]
    lines += [
        "",
        "## End-to-end CLI on all {} videos".format(args.num_videos),
        "",
        "Fresh process per run ({} repeats), wall time. JSON loading in-process (for reference): "
        "GT {:.3f} s, results {:.3f} s.".format(args.cli_repeats, d["load_gt"], d["load_res"]),
        "",
        "| command | median s | min s | ms/video |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("score", "`python -m maskprop_d2.evaluation GT RESULTS --json OUT` (score)"),
        ("check", "`python -m maskprop_d2.evaluation --check GT RESULTS` (validate only)"),
        ("help", "`python -m maskprop_d2.evaluation --help` (start-up + imports only)"),
    ):
        c = cli[key]
        lines.append("| {} | {:.3f} | {:.3f} | {:.2f} |".format(
            label, c["median"], c["min"], 1000 * c["median"] / args.num_videos))  # fmt: skip
    lines += [
        "",
        "CLI stats equal the in-process ones: **{}**. `--check` output: `{}`.".format(
            "yes" if d["cli_same"] else "NO", d["check_out"]
        ),
        "",
        "## Agreement",
        "",
        "### Hand-checkable cases (docs/evaluation.md)",
        "",
        "64×64, 4 frames, one GT 20×20 square (category 1) in frames 0–2, absent in frame 3; one "
        "detection of category 1 unless noted. Video IoU: the project's `video_iou` (got) and "
        "this script's dense numpy implementation (dense); tolerance {:g}.".format(TOL),
        "",
        "| case | quantity | expected | got | dense | pass |",
        "|---|---|---:|---:|---:|---|",
    ]
    for h in d["hand"]:
        lines.append("| {} | {} | {} | {} | {} | {} |".format(
            h["case"], h["q"], fmt(h["exp"]), fmt(h["got"]),
            fmt(h["dense"]) if h["dense"] is not None else "",
            "pass" if h["ok"] else "**FAIL**",
        ))  # fmt: skip
    di, gp = d["dense"], d["gt_pred"]
    lines += [
        "",
        "### Dense numpy video IoU vs the project's",
        "",
        "All (prediction, GT) pairs of {} videos sampled (seed {}) from the {}-video set, any "
        "category: {} pairs, {} with a non-zero IoU. Max |difference| vs `video_iou` (per pair): "
        "{:.3g}; vs `video_ious` (per-video matrix on the evaluator's tracks): {:.3g} → **{}**. "
        "(Time for these pairs: dense numpy {:.2f} s, `video_iou` {:.2f} s, `video_ious` "
        "{:.3f} s.)".format(
            di["videos"], args.seed, args.num_videos, di["pairs"], di["nonzero"], di["max_pair"],
            di["max_matrix"], "pass" if di["ok"] else "FAIL", di["t_dense"], di["t_pair"],
            di["t_matrix"],
        ),  # fmt: skip
        "",
        "### GT fed back as predictions",
        "",
        "Every GT track of the {} videos as a prediction (its category, a random score): "
        "{} ({:.2f} s) → **{}** (AR1 {:.4f}: AR1 < 1 is expected where a video has two GT "
        "tracks of one class).".format(
            args.num_videos,
            ", ".join("{} {:.6f}".format(k, gp["stats"][k]) for k in gp["keys"]),
            gp["secs"], "pass" if gp["ok"] else "FAIL", gp["stats"]["AR1"],
        ),  # fmt: skip
        "",
        "## Reading",
        "",
    ]
    lines += reading(args, d)
    lines.append("")
    return "\n".join(lines)


def reading(args, d):
    rows, (a, b, r2) = d["rows"], d["fit"]
    ms = [r["ms_per_video_min"] for r in rows]
    linear = r2 >= 0.99 and max(ms) / min(ms) <= 1.3
    out = [
        "- **{}** Seconds vs videos fit a line with R² = {:.4f} (slope {:.2f} ms/video, "
        "intercept {:.3f} s, fitted to the minimum times); ms/video stays within "
        "{:.2f}–{:.2f} from {} to {} videos{}.".format(
            "Time is linear in the number of videos." if linear
            else "Time is not clearly linear in the number of videos.",
            r2, 1000 * b, a, min(ms), max(ms), rows[0]["n"], rows[-1]["n"],
            "" if linear else " (check the load average: the machine may have been busy)",
        )  # fmt: skip
    ]
    prof = {p["key"]: p for p in d["profile"]}
    ph, tot = d["phases"], rows[-1]["min"]
    rest = tot - ph["parse_gt"] - ph["parse_results"]
    out.append(
        "- Where the time goes ({} videos, unprofiled): parsing and validating the inputs takes "
        "{:.0f} % of `evaluate` (`_parse_gt` {:.0f} %, `_parse_results` {:.0f} %, of which "
        "validating the results with `check_results` {:.0f} %); the scoring itself (video IoUs, "
        "matching, accumulation) the other {:.0f} %. Under cProfile, `segmentation_problems` "
        "(called once per GT track and per prediction; its `rle_totals` runs a vectorised "
        "numpy decode on only ~{} strings at a time) is {:.0f} % and `video_ious` {:.0f} %."
        .format(
            rows[-1]["n"], 100 * (ph["parse_gt"] + ph["parse_results"]) / tot,
            100 * ph["parse_gt"] / tot, 100 * ph["parse_results"] / tot,
            100 * ph["check"] / tot, 100 * rest / tot, args.length, prof["segprob"]["pct"],
            prof["ious"]["pct"],
        )  # fmt: skip
    )
    cli = d["cli"]
    out.append(
        "- The CLI on all {} videos takes {:.2f} s (median); `--help` alone, i.e. interpreter "
        "start-up and imports, takes {:.2f} s (`python -m maskprop_d2.evaluation` runs the "
        "`__init__` of `maskprop_d2`, which imports its data and modeling packages, and of "
        "`maskprop_d2.evaluation`, which imports the detectron2 `YTVISEvaluator`: torch and "
        "detectron2 get loaded although the CLI needs only numpy and pycocotools); loading "
        "the two JSONs takes about {:.2f} s and scoring {:.2f} s (in-process, min); "
        "`--check` takes {:.2f} s.".format(
            args.num_videos, cli["score"]["median"], cli["help"]["median"],
            d["load_gt"] + d["load_res"], rows[-1]["min"], cli["check"]["median"],
        )  # fmt: skip
    )
    n_fail = sum(not h["ok"] for h in d["hand"])
    out.append(
        "- Agreement: {} of {} hand-checkable quantities as expected; dense numpy video IoU "
        "agrees with the project's to {:.3g} over {} pairs; GT as predictions gives AP {:.6f}."
        .format(
            len(d["hand"]) - n_fail, len(d["hand"]),
            max(d["dense"]["max_pair"], d["dense"]["max_matrix"]), d["dense"]["pairs"],
            d["gt_pred"]["stats"]["AP"],
        )  # fmt: skip
    )
    out.append(
        "- Timings are preliminary on a shared 2-core machine (see the load average above); "
        "the predictions are synthetic perturbations of the GT, not a model's output, so the "
        "stats only show that the set is neither trivial nor degenerate."
    )
    return out


# ----------------------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cache-dir", default="output/bench_evaluator",
                   help="where the synthetic GT is generated and reused (and results written)")
    p.add_argument("--sizes", nargs="+", type=int, default=[25, 50, 100, 200, 300],
                   help="video counts timed; the largest is the set's size")  # fmt: skip
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cli-repeats", type=int, default=3)
    p.add_argument("--length", type=int, default=24)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-preds", type=int, default=10, help="predictions per video, at least")
    p.add_argument("--max-preds", type=int, default=20, help="predictions per video, at most")
    p.add_argument("--iou-check-videos", type=int, default=30)
    p.add_argument("--rebuild-predictions", action="store_true",
                   help="rebuild the cached results JSON even if it exists")
    p.add_argument("--out", default="", help="markdown report (printed in any case)")
    p.add_argument("--plot", default=None, help="PNG (default: --out with .png)")
    args = p.parse_args()
    args.sizes = sorted(set(args.sizes))
    args.num_videos = args.sizes[-1]
    plot_path = args.plot if args.plot is not None else (
        os.path.splitext(args.out)[0] + ".png" if args.out else ""
    )

    info = machine_info()
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    command = "OMP_NUM_THREADS={} python {}".format(
        info["omp"], " ".join([os.path.relpath(os.path.abspath(__file__), REPO)]
                              + [shlex.quote(x) for x in sys.argv[1:]]))  # fmt: skip

    gt_path, gt_secs, gt_reused = build_gt(args)
    print("GT: {} ({})".format(gt_path, "reused" if gt_reused else "{:.1f} s".format(gt_secs)))
    t0 = time.perf_counter()
    with open(gt_path, "rb") as f:
        gt = json.loads(f.read())
    load_gt = time.perf_counter() - t0
    res_path = os.path.join(
        dataset_dir(args),
        "results_v{}_seed{}_preds{}-{}.json".format(
            PRED_VERSION, args.seed, args.min_preds, args.max_preds
        ),
    )
    pred_secs = None  # None: reused from the cache
    if args.rebuild_predictions or not os.path.isfile(res_path):
        t0 = time.perf_counter()
        results = build_predictions(gt, args)
        pred_secs = time.perf_counter() - t0
        tmp = res_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, separators=(",", ":"))
        os.replace(tmp, res_path)
    t0 = time.perf_counter()
    with open(res_path, "rb") as f:
        results = json.loads(f.read())
    load_res = time.perf_counter() - t0
    print("predictions: {} entries ({}) -> {}".format(
        len(results), "reused" if pred_secs is None else "{:.1f} s".format(pred_secs), res_path))

    rows = time_evaluate(gt, results, args.sizes, args.repeats)
    fit = linear_fit(rows)
    phases = phase_times(*subset(gt, results, args.num_videos), args.repeats)
    prof = profile_evaluate(*subset(gt, results, args.num_videos))
    print("profiled evaluate: {:.2f} s".format(prof[0]["cum"]), flush=True)

    stats_path = os.path.join(dataset_dir(args), "cli_stats.json")
    cli = {}
    for key, argv in (
        ("score", [gt_path, res_path, "--json", stats_path]),
        ("check", ["--check", gt_path, res_path]),
        ("help", ["--help"]),
    ):
        secs, proc = run_cli(argv, args.cli_repeats)
        cli[key] = dict(secs=secs, median=statistics.median(secs), min=min(secs),
                        n=args.num_videos, out=proc.stdout.strip())  # fmt: skip
        print("CLI {:5s}: median {:.3f} s".format(key, cli[key]["median"]), flush=True)
    with open(stats_path) as f:
        cli_stats = json.load(f)
    cli_same = cli_stats == rows[-1]["stats"]
    check_out = cli["check"]["out"].replace(os.path.dirname(res_path) + os.sep, "")

    hand = check_hand_cases()
    dense = check_dense_iou(gt, results, args.iou_check_videos, args.seed)
    gt_pred = gt_as_predictions(gt, args.seed)
    load_after = os.getloadavg()

    for path in (args.out, plot_path):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if plot_path:
        plot(rows, fit, cli["score"], plot_path)
    d = dict(
        info=info, rows=rows, fit=fit, profile=prof, phases=phases, cli=cli, cli_same=cli_same,
        check_out=check_out, hand=hand, dense=dense, gt_pred=gt_pred, load_gt=load_gt,
        load_res=load_res, gt_path=gt_path, gt_secs=gt_secs, gt_reused=gt_reused,
        res_path=res_path, gt_mib=os.path.getsize(gt_path) / 2**20,
        res_mib=os.path.getsize(res_path) / 2**20,
        n_gt=len(gt["annotations"]), n_pred=len(results), pred_secs=pred_secs,
        started=started, load_before=load_before, load_after=load_after, command=command,
        plot_path=plot_path,
    )  # fmt: skip
    md = render(args, d)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    print(md)
    failed = [h for h in hand if not h["ok"]]
    problems = ["hand case {!r} {}".format(h["case"], h["q"]) for h in failed]
    if not dense["ok"]:
        problems.append("dense video IoU differs (max {:.3g} / {:.3g})".format(
            dense["max_pair"], dense["max_matrix"]))  # fmt: skip
    if not gt_pred["ok"]:
        problems.append("GT as predictions: {}".format(gt_pred["stats"]))
    if not cli_same:
        problems.append("CLI stats differ from the in-process ones")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
