#!/usr/bin/env python
"""Time the training-data checks on YouTube-VIS-2019-sized metadata.

Generates a train JSON of 2,238 videos / ~61.8k frames at 720x1280 with ~3,774 tracks (every
track annotated on each frame of its video, null where absent) plus one empty file per frame,
then times ``load_ytvis_json`` (JSON parse + every RLE / polygon / box check) and the frame-file
pass (one ``stat`` per frame). Run once with compressed RLE counts (strings, decoded and summed
vectorised) and once with uncompressed counts (lists, as in the released YouTube-VIS JSON).

    python tools/bench_data_validation.py --out benchmarks/data_validation_cpu.md
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import pycocotools.mask as mask_util

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import cpu_model  # noqa: E402

H, W = 720, 1280


def _masks(rng, n):
    """n random ellipse masks at (H, W) -> (compressed str, uncompressed list) RLEs."""
    yy, xx = np.mgrid[:H, :W]
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(100, H - 100), rng.uniform(100, W - 100)
        ry, rx = rng.uniform(20, 200), rng.uniform(20, 300)
        m = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)
        rle = mask_util.encode(np.asfortranarray(m))
        flat = m.flatten(order="F")
        change = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.r_[0, change, flat.size]
        counts = np.diff(bounds).tolist()
        if flat[0] == 1:
            counts = [0] + counts
        out.append((rle["counts"].decode("ascii"), counts))
    return out


def generate(root, compressed, num_videos=2238, num_tracks=3774, seed=0):
    rng = np.random.default_rng(seed)
    pool = _masks(rng, 64)
    lengths = rng.integers(19, 37, size=num_videos)  # mean ~27.6 frames
    videos, annos = [], []
    img_root = os.path.join(root, "JPEGImages")
    for v in range(num_videos):
        folder = f"v{v:05d}"
        os.makedirs(os.path.join(img_root, folder))
        names = [f"{folder}/{f * 5:05d}.jpg" for f in range(int(lengths[v]))]
        for n in names:
            open(os.path.join(img_root, n), "wb").close()
        videos.append({"id": v + 1, "width": W, "height": H, "length": len(names),
                       "file_names": names})
    owners = np.r_[np.arange(num_videos), rng.integers(0, num_videos, num_tracks - num_videos)]
    for a, v in enumerate(owners.tolist()):
        segs = []
        for _ in range(int(lengths[v])):
            if rng.random() < 0.1:
                segs.append(None)
                continue
            c, u = pool[int(rng.integers(len(pool)))]
            segs.append({"size": [H, W], "counts": c if compressed else u})
        annos.append({"id": a + 1, "video_id": v + 1, "category_id": int(rng.integers(1, 41)),
                      "iscrowd": 0, "segmentations": segs,
                      "bboxes": None, "areas": None})
    data = {"videos": videos, "annotations": annos,
            "categories": [{"id": i, "name": f"c{i}"} for i in range(1, 41)]}
    json_file = os.path.join(root, "train.json")
    with open(json_file, "w") as f:
        json.dump(data, f)
    return json_file, img_root, int(lengths.sum()), sum(
        s is not None for a in annos for s in a["segmentations"])


def _baseline_loader(ref):
    """``load_ytvis_json`` as of git commit ``ref`` (imported from ``git show``)."""
    import subprocess
    import types

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "show", f"{ref}:maskprop_d2/data/ytvis.py"], cwd=repo,
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType("maskprop_d2.data._ytvis_baseline")
    mod.__package__ = "maskprop_d2.data"
    exec(compile(src, f"{ref}:ytvis.py", "exec"), mod.__dict__)
    return mod.load_ytvis_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/data_validation_cpu.md")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--baseline-ref", default="03e1544",
                    help="git commit whose load_ytvis_json (e.g. from before the checks) is "
                    "timed too; '' = no")
    args = ap.parse_args()

    from maskprop_d2.data.validation import frame_file_problems, read_json_file
    from maskprop_d2.data.ytvis import load_ytvis_json

    baseline = _baseline_loader(args.baseline_ref) if args.baseline_ref else None

    rows = []
    for compressed in (True, False):
        with tempfile.TemporaryDirectory() as root:
            json_file, img_root, frames, segs = generate(root, compressed)
            mb = os.path.getsize(json_file) / 2**20
            t_json, t_load, t_stat, t_base = [], [], [], [float("nan")]
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                read_json_file(json_file)
                t_json.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                recs = load_ytvis_json(json_file, img_root)
                t_load.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                assert not frame_file_problems(recs, json_file)
                t_stat.append(time.perf_counter() - t0)
                if baseline is not None:
                    t0 = time.perf_counter()
                    baseline(json_file, img_root)
                    t_base.append(time.perf_counter() - t0)
            rows.append((
                "compressed (str)" if compressed else "uncompressed (list)",
                len(recs), frames, segs, mb, min(t_json), min(t_base[1:] or t_base), min(t_load),
                min(t_stat),
            ))
            print(rows[-1], flush=True)

    lines = [
        "# Training-data validation time, YouTube-VIS-2019-sized metadata (CPU)",
        "",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores visible (run under `nice -n 15` on a",
        "machine shared with a training run). Command:",
        "`python tools/bench_data_validation.py --out benchmarks/data_validation_cpu.md`",
        "",
        "Generated train JSON: 2,238 videos at 720x1280, 3,774 tracks annotated on every frame",
        "of their video (10% null), 40 categories, no boxes (computed from the masks), one empty",
        "file per frame. `load_ytvis_json` = JSON parse + every check (ids, lengths,",
        "RLE size, compressed counts' syntax and total or list counts' sum, boxes from the masks);",
        "frame files = one `os.stat` per frame (`frame_file_problems`). Best of "
        f"{args.repeats} runs.",
        "",
        f"Baseline: `load_ytvis_json` of commit {args.baseline_ref} (before the checks: no check",
        "of compressed counts, first problem raised), same file.",
        "",
        "| RLE counts | videos | frames | segmentations | JSON MiB | JSON parse s "
        "| baseline load s | load_ytvis_json s (incl. parse) | frame-file stat s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            "| {} | {} | {} | {} | {:.0f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} |".format(*r)
        )
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
