#!/usr/bin/env python
"""Speed of the YouTube-VIS evaluator against the official YouTube-VIS API and the project's
previous version, on a 300-video set this script builds; the metrics must be bit-identical.

1. **The set** (seeded, cached as JSON under ``--cache-dir``): ``--videos`` videos of mixed frame
   sizes (90x160 ... 480x640, see ``SIZES``), 10-36 frames, 6 categories, 1-4 moving ellipses per
   video that enter late, leave early and disappear for a few frames (absent frames, ``null``),
   about 5 % of them crowd GTs; the GT segmentations are compressed RLE (str counts) in half of the
   annotations and uncompressed RLE (list counts) in the other half, with YouTube-VIS ``areas``.
   Predictions: per GT track (93 %) a shifted / rescaled / jittered copy that may drop frames or
   run past the track's ends, some class swaps and lower-scored duplicates, and 2-6 false
   positives per video (ellipses elsewhere); compressed RLE with str counts.
2. **Timing**, the JSON already loaded: ``evaluate(gt, results)`` of this checkout (validation
   included); the same function of the project's previous versions (``--old-ref``, repeatable,
   default ``main``: its evaluation and RLE modules by ``git show``, in a temporary package);
   and, with ``--official-dir`` (a folder holding the package ``ytvosapi``: the official API's
   ``ytvos.py`` and ``ytvoseval.py``, never part of this repository), ``YTVOS`` on the loaded GT
   dict + ``loadRes`` + ``YTVOSeval(...).evaluate(); accumulate(); summarize()``, stdout
   discarded. They run interleaved (each once per round, ``--repeats`` rounds); the best (minimum)
   wall and CPU times are reported. Every run gets a fresh deep copy of the inputs, made outside
   the timed region (the official API modifies them).
3. **Stages** of the new evaluator (CPU seconds per video): parse/validate, video IoU, matching
   + accumulation, from ``evaluate(..., timings=dict)``.
4. **Agreement**: the 12 stats of the new and the old versions must be bit-identical, and those of
   the official API identical up to its ``+ eps`` in the precision denominator (the largest
   difference is printed). The script exits with 1 when they are not.

Usage::

    OMP_NUM_THREADS=1 python tools/bench_evaluator.py --official-dir /tmp/official \
        --out benchmarks/evaluator_cpu.md
"""

import argparse
import contextlib
import copy
import datetime
import importlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import pycocotools.mask as mask_util

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_common import cpu_model, write_report  # noqa: E402

from maskprop_d2.evaluation import ytvis_eval  # noqa: E402

SET_VERSION = 1  # bump when the set builder changes (the cache is keyed on it)
SIZES = ((90, 160), (144, 256), (180, 320), (240, 320), (270, 480), (360, 640), (480, 640))
NUM_CATEGORIES = 6


# ----------------------------------------------------------------------------- the set
def _ellipse(rng, h, w, start, end, gaps):
    d = min(h, w)
    return dict(
        ax=np.array([rng.uniform(0.05, 0.25) * d, rng.uniform(0.05, 0.25) * d]),
        pos=rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h]),
        vel=rng.normal(0, 0.015 * d, 2),
        ang=float(rng.uniform(0, 180)),
        start=int(start),
        end=int(end),
        gaps=set(int(g) for g in gaps),
    )


def _render(obj, L, h, w, rng=None, jitter=0.0, scale=1.0, shift=(0.0, 0.0), frames=None):
    """(h, w, L) Fortran uint8 masks of an ellipse track and its (L,) presence."""
    masks = np.zeros((h, w, L), dtype=np.uint8, order="F")
    present = np.zeros(L, dtype=bool)
    ts = frames if frames is not None else range(obj["start"], obj["end"] + 1)
    ax = np.maximum(1, np.rint(obj["ax"] * scale)).astype(int)
    for t in ts:
        if t in obj["gaps"]:
            continue
        c = obj["pos"] + obj["vel"] * t + np.asarray(shift)
        if jitter:
            c = c + rng.normal(0, jitter, 2)
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(
            m,
            (int(round(c[0])), int(round(c[1]))),
            (int(ax[0]), int(ax[1])),
            obj["ang"],
            0,
            360,
            1,
            -1,
        )
        if m.any():
            masks[:, :, t] = m
            present[t] = True
    return masks, present


def _uncompressed(mask):
    """Column-major run lengths of an (h, w) mask (the uncompressed RLE counts list)."""
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.r_[0, change, flat.size]
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return counts


def _segmentations(masks, present, uncompressed=False):
    rles = mask_util.encode(masks)
    out = []
    for t, (r, p) in enumerate(zip(rles, present, strict=True)):
        if not p:
            out.append(None)
        elif uncompressed:
            out.append(
                {"size": [int(s) for s in r["size"]], "counts": _uncompressed(masks[:, :, t])}
            )
        else:
            out.append({"size": [int(s) for s in r["size"]], "counts": r["counts"].decode()})
    return out


def build_set(num_videos, seed):
    """(gt dict, results list) of the benchmark (see the module docstring)."""
    cats = [{"id": i + 1, "name": "class{}".format(i + 1)} for i in range(NUM_CATEGORIES)]
    videos, anns, results = [], [], []
    for vid in range(1, num_videos + 1):
        rng = np.random.default_rng(np.random.SeedSequence([seed, vid]))
        h, w = SIZES[int(rng.integers(len(SIZES)))]
        L = int(rng.integers(10, 37))
        videos.append(
            {
                "id": vid,
                "height": h,
                "width": w,
                "length": L,
                "file_names": ["v{:04d}/{:05d}.jpg".format(vid, t) for t in range(L)],
            }
        )
        objs = []
        for _ in range(int(rng.integers(1, 5))):
            start = int(rng.integers(0, L // 3 + 1)) if rng.random() < 0.4 else 0
            end = L - 1 - (int(rng.integers(0, L // 3 + 1)) if rng.random() < 0.4 else 0)
            gaps = []
            if rng.random() < 0.3:
                g0 = int(rng.integers(start, end + 1))
                gaps = range(g0, min(end, g0 + int(rng.integers(1, 4))) + 1)
            obj = _ellipse(rng, h, w, start, end, gaps)
            masks, present = _render(obj, L, h, w)
            if not present.any():
                continue
            cat = int(rng.integers(1, NUM_CATEGORIES + 1))
            segs = _segmentations(masks, present, uncompressed=bool(rng.random() < 0.5))
            areas = [
                float(a) if p else None
                for a, p in zip(masks.sum(axis=(0, 1)).tolist(), present, strict=True)
            ]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "video_id": vid,
                    "category_id": cat,
                    "iscrowd": int(rng.random() < 0.05),
                    "height": h,
                    "width": w,
                    "segmentations": segs,
                    "areas": areas,
                }
            )
            objs.append((obj, cat))
        preds = []
        for obj, cat in objs:
            if rng.random() < 0.07:
                continue
            q = float(rng.uniform(0, 1))
            d = min(h, w)
            frames = range(
                max(0, obj["start"] - (rng.random() < 0.2)),
                min(L, obj["end"] + 1 + (rng.random() < 0.2)),
            )
            frames = [t for t in frames if not (rng.random() < 0.1 * (1 - q))]
            masks, present = _render(
                obj,
                L,
                h,
                w,
                rng=rng,
                jitter=0.02 * d * (1 - q),
                scale=1 + rng.normal(0, 0.15 * (1 - q)),
                shift=rng.normal(0, 0.05 * d * (1 - q), 2),
                frames=frames,
            )
            if not present.any():
                continue
            c = cat if rng.random() > 0.1 else int(rng.integers(1, NUM_CATEGORIES + 1))
            score = float(np.clip(0.2 + 0.7 * q + rng.normal(0, 0.1), 0.01, 0.99))
            preds.append((c, score, masks, present))
            if rng.random() < 0.15:  # a lower-scored duplicate
                masks2, present2 = _render(
                    obj, L, h, w, rng=rng, jitter=0.05 * d, shift=rng.normal(0, 0.1 * d, 2)
                )
                if present2.any():
                    preds.append((cat, score * 0.5, masks2, present2))
        for _ in range(int(rng.integers(2, 7))):  # false positives
            s = int(rng.integers(0, L - 2))
            e = int(rng.integers(s + 1, L))
            obj = _ellipse(rng, h, w, s, e, ())
            masks, present = _render(obj, L, h, w)
            if present.any():
                preds.append(
                    (
                        int(rng.integers(1, NUM_CATEGORIES + 1)),
                        float(0.01 + 0.6 * rng.beta(2, 5)),
                        masks,
                        present,
                    )
                )
        for i in rng.permutation(len(preds)):
            c, s, m, p = preds[i]
            results.append(
                {
                    "video_id": vid,
                    "category_id": c,
                    "score": round(s, 6),
                    "segmentations": _segmentations(m, p),
                }
            )
    gt = {
        "info": {"description": "bench_evaluator set v{} seed {}".format(SET_VERSION, seed)},
        "videos": videos,
        "categories": cats,
        "annotations": anns,
    }
    return gt, results


def load_or_build_set(cache_dir, num_videos, seed):
    d = os.path.join(cache_dir, "set_v{}_n{}_seed{}".format(SET_VERSION, num_videos, seed))
    gt_path, res_path = os.path.join(d, "gt.json"), os.path.join(d, "results.json")
    built = None
    if not (os.path.isfile(gt_path) and os.path.isfile(res_path)):
        t0 = time.perf_counter()
        gt, results = build_set(num_videos, seed)
        built = time.perf_counter() - t0
        os.makedirs(d, exist_ok=True)
        for path, obj in ((gt_path, gt), (res_path, results)):
            write_report(json.dumps(obj, separators=(",", ":")), path)
    with open(gt_path) as f:
        gt = json.load(f)
    with open(res_path) as f:
        results = json.load(f)
    return gt, results, gt_path, res_path, built


# ----------------------------------------------------------------------------- the contenders
def load_old(ref, dest, name="old_ytvis"):
    """The project's evaluator at git ``ref`` as package ``name`` in ``dest``: its evaluation and
    utils modules (those that exist at ``ref``) in a copy of the package layout, so that relative
    imports resolve; the packages' ``__init__`` files are left empty (they import torch)."""
    root = os.path.join(dest, name)
    for sub, files in (
        ("evaluation", ("ytvis_eval", "results_io", "parse")),
        ("utils", ("rle", "file_io")),
    ):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        open(os.path.join(root, sub, "__init__.py"), "w").close()
        for mod in files:
            proc = subprocess.run(
                ["git", "show", "{}:maskprop_d2/{}/{}.py".format(ref, sub, mod)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=mod == "ytvis_eval",  # older versions lack some of the others
            )
            if proc.returncode == 0:
                with open(os.path.join(root, sub, mod + ".py"), "w") as f:
                    f.write(proc.stdout)
    open(os.path.join(root, "__init__.py"), "w").close()
    if dest not in sys.path:
        sys.path.insert(0, dest)
    return importlib.import_module(name + ".evaluation.ytvis_eval")


def load_official(folder):
    sys.path.insert(0, folder)
    ytvos = importlib.import_module("ytvosapi.ytvos")
    ytvoseval = importlib.import_module("ytvosapi.ytvoseval")

    def run(gt, results):
        with contextlib.redirect_stdout(io.StringIO()):
            g = ytvos.YTVOS()
            g.dataset = gt
            g.createIndex()
            d = g.loadRes(results)
            e = ytvoseval.YTVOSeval(g, d, "segm")
            e.evaluate()
            e.accumulate()
            e.summarize()
        return np.asarray(e.stats, dtype=np.float64)

    return run


def timed(fn, gt, results):
    a, b = copy.deepcopy(gt), copy.deepcopy(results)  # outside the timed region
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(a, b)
    return out, time.perf_counter() - w0, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache-dir", default=os.path.join(REPO, "output", "bench_evaluator"))
    ap.add_argument(
        "--old-ref",
        action="append",
        default=None,
        help="a previous version to compare with (git ref; repeatable; default: main)",
    )
    ap.add_argument(
        "--official-dir",
        default=None,
        help="folder holding the package ytvosapi (official ytvos.py, ytvoseval.py)",
    )
    ap.add_argument("--out", default=None, help="write the report (markdown) here")
    args = ap.parse_args()
    command = "OMP_NUM_THREADS={} python {}".format(
        os.environ.get("OMP_NUM_THREADS", "unset"),
        " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO)] + sys.argv[1:]),
    )
    load_before = os.getloadavg()
    gt, results, gt_path, res_path, built = load_or_build_set(
        args.cache_dir, args.videos, args.seed
    )
    tmp = tempfile.mkdtemp(prefix="bench_evaluator_")
    old_refs = args.old_ref or ["main"]
    contenders = [("new", lambda g, r: ytvis_eval.evaluate(g, r).stats)]
    labels = {"new": "this checkout: `evaluate(gt, results)` (validation included)"}
    for i, ref in enumerate(old_refs):
        mod = load_old(ref, tmp, "old_ytvis{}".format(i))
        commit = subprocess.run(
            ["git", "log", "-1", "--format=%h, %cd", "--date=short", ref],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        name = "old{}".format(i)
        contenders.append((name, lambda g, r, mod=mod: mod.evaluate(g, r).stats))
        labels[name] = "previous version `{}` (commit {}; `git show`)".format(ref, commit)
    labels["official"] = "official YouTube-VIS API (scratch copy, see below)"
    if args.official_dir:
        contenders.append(("official", load_official(args.official_dir)))
    wall = {k: [] for k, _ in contenders}
    cpu = {k: [] for k, _ in contenders}
    stats = {}
    stages = []
    for rep in range(args.repeats):
        for name, fn in contenders:
            s, w, c = timed(fn, gt, results)
            stats[name] = s
            wall[name].append(w)
            cpu[name].append(c)
            print(
                "round {} {:8s} wall {:.3f} s cpu {:.3f} s".format(rep + 1, name, w, c), flush=True
            )
        t = {}
        ytvis_eval.evaluate(gt, results, timings=t)
        stages.append(t)
    load_after = os.getloadavg()
    olds = [name for name, _ in contenders if name.startswith("old")]
    same_old = all(np.array_equal(stats["new"], stats[name]) for name in olds)
    diff_off = (
        float(np.abs(stats["new"] - stats["official"]).max()) if "official" in stats else None
    )
    n = args.videos
    lines = [
        "# YouTube-VIS evaluator speed (CPU)",
        "",
        "- command: `{}`".format(command),
        "- date: {} UTC".format(datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")),
        "- machine: {} CPUs ({}), {}; python {}, numpy {}".format(
            os.cpu_count(),
            cpu_model(),
            platform.platform(),
            platform.python_version(),
            np.__version__,
        ),
        "- load average (1/5/15 min) before: {}; after: {} (a shared machine: other "
        "processes were running)".format(
            " ".join("%.2f" % x for x in load_before), " ".join("%.2f" % x for x in load_after)
        ),
        "- set: {} videos, {} frames, {} GT tracks ({} crowd, {} with uncompressed RLE), "
        "{} predictions; frame sizes {}; cached at `{}`{}".format(
            n,
            sum(v["length"] for v in gt["videos"]),
            len(gt["annotations"]),
            sum(a["iscrowd"] for a in gt["annotations"]),
            sum(
                any(s is not None and isinstance(s["counts"], list) for s in a["segmentations"])
                for a in gt["annotations"]
            ),
            len(results),
            ", ".join("{}x{}".format(h, w) for h, w in SIZES),
            os.path.relpath(os.path.dirname(gt_path), REPO),
            "" if built is None else " (built in {:.1f} s)".format(built),
        ),
        "",
        "## Whole evaluation, JSON already loaded",
        "",
        "{} rounds; each round runs every contender once, in turn (interleaved), on a fresh "
        "deep copy of the inputs (the official API modifies them; the copy is not timed). "
        "Best (minimum) of the rounds; wall time and the process's CPU time.".format(args.repeats),
        "",
        "| evaluator | best wall s | median wall s | best CPU s | median CPU s "
        "| ms/video (best CPU) | new is faster by (best wall / best CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _ in contenders:
        bw, bc = min(wall[name]), min(cpu[name])
        ratio = (
            ""
            if name == "new"
            else "{:.2f}x / {:.2f}x".format(bw / min(wall["new"]), bc / min(cpu["new"]))
        )
        lines.append(
            "| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.2f} | {} |".format(
                labels[name],
                bw,
                float(np.median(wall[name])),
                bc,
                float(np.median(cpu[name])),
                1000 * bc / n,
                ratio,
            )
        )
    best = min(stages, key=lambda t: sum(t.values()))
    lines += [
        "",
        "Stages of the new evaluator in CPU time (the round with the smallest total, "
        "{:.3f} s): ".format(sum(best.values()))
        + ", ".join(
            "{} {:.3f} s = {:.2f} ms/video".format(k, v, 1000 * v / n) for k, v in best.items()
        )
        + " (parse = validation + decoding of GT and results, iou = video IoUs, match = "
        "matching + accumulation).",
        "",
        "Agreement: new vs previous versions' stats bit-identical: **{}**".format(
            "yes" if same_old else "NO"
        ),
    ]
    if diff_off is not None:
        lines[-1] += (
            "; new vs official: max |difference| of the 12 stats {:.3g} (the official "
            "precision is tp / (tp + fp + eps)).".format(diff_off)
        )
        speedup = min(cpu["official"]) / min(cpu["new"])
        lines += [
            "",
            "Against the official API the new evaluator is {:.2f}x as fast in CPU time ({:.2f}x "
            "in wall time; medians of the rounds: {:.2f}x CPU, {:.2f}x wall): the 3x goal is "
            "{}.".format(
                speedup,
                min(wall["official"]) / min(wall["new"]),
                float(np.median(cpu["official"]) / np.median(cpu["new"])),
                float(np.median(wall["official"]) / np.median(wall["new"])),
                "met" if speedup >= 3 else "**not met**",
            ),
        ]
        lines += [
            "",
            "Official side: `ytvos.py` and `ytvoseval.py` of github.com/youtubevos/"
            "cocoapi (commit f3f9948) copied to a scratch folder outside the repository "
            "(`--official-dir`), with only the changes Python 3 / numpy 2 need "
            "(`unicode = str`, `np.float` -> `np.float64`, an int sample count in "
            "`np.linspace`, pycocotools' installed `mask` module). Timed: `YTVOS()` on the "
            "loaded GT dict + `createIndex`, `loadRes(results)`, `YTVOSeval(...)."
            "evaluate()`, `accumulate()`, `summarize()`, stdout discarded; it validates "
            "nothing.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_report(text, args.out)
    return 0 if same_old and (diff_off is None or diff_off < 1e-12) else 1


if __name__ == "__main__":
    sys.exit(main())
