#!/usr/bin/env python
"""Streaming video inference: wall time and peak memory vs video length (issue 5, benchmark 3).

For each (source, length) a FRESH subprocess builds a ``VideoPredictor``, streams the first N
frames of the source through it (frames are read / generated one at a time, never all held),
consumes every output and RLE-encodes its masks (as the evaluator does), and reports:

* wall time of the whole stream (all N frames, including the first) and ms/frame;
* peak RSS growth: ``ru_maxrss`` at the end minus ``ru_maxrss`` right after model build + the
  first yielded frame output (the baseline), so a per-frame leak or whole-video buffering shows
  up as growth that scales with N.

Sources: ``vtest`` (OpenCV's vtest.avi, 768x576, 795 frames; looped past its end) and
``synthetic`` (random texture + moving shapes, generated on the fly at 768x576).

Usage:
    python tools/bench_video_scaling.py --weights CKPT --video /tmp/vtest.avi \
        --lengths 100 200 400 800 --sources vtest synthetic --out benchmarks/video_scaling_cpu.md
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = 768, 576


# ----------------------------------------------------------------------------- frame sources
def vtest_frames(path, n):
    import cv2

    cap = cv2.VideoCapture(path)
    i = 0
    while i < n:
        ok, frame = cap.read()
        if not ok:  # loop the video past its end
            cap.release()
            cap = cv2.VideoCapture(path)
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError("cannot read " + path)
        yield frame
        i += 1
    cap.release()


def synthetic_frames(n, seed=0):
    import cv2
    import numpy as np

    rng = np.random.RandomState(seed)
    bg = rng.randint(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
    bg = cv2.resize(bg, (W, H), interpolation=cv2.INTER_LINEAR)
    shapes = []
    for _ in range(5):
        shapes.append(
            dict(
                kind=rng.randint(2),
                pos=rng.uniform([60, 60], [W - 60, H - 60]),
                vel=rng.uniform(-6, 6, 2),
                size=rng.randint(30, 90),
                color=tuple(int(c) for c in rng.randint(0, 256, 3)),
            )
        )
    for _ in range(n):
        frame = bg.copy()
        noise = rng.randint(-12, 13, (H, W, 1), dtype=np.int16)
        frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        for s in shapes:
            s["pos"] += s["vel"]
            for d, lim in ((0, W), (1, H)):
                if not s["size"] <= s["pos"][d] <= lim - s["size"]:
                    s["vel"][d] *= -1
                    s["pos"][d] = min(max(s["pos"][d], s["size"]), lim - s["size"])
            c = (int(s["pos"][0]), int(s["pos"][1]))
            if s["kind"] == 0:
                cv2.circle(frame, c, s["size"] // 2, s["color"], -1)
            else:
                h = s["size"] // 2
                cv2.rectangle(frame, (c[0] - h, c[1] - h), (c[0] + h, c[1] + h), s["color"], -1)
        yield frame


# ----------------------------------------------------------------------------- worker
def setup_cfg(args):
    sys.path.insert(0, REPO)
    from detectron2.config import get_cfg

    from maskprop_d2.config import add_maskprop_config

    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, args.config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = args.weights
    cfg.MODEL.MASKPROP.INFERENCE.SCORE_THRESH = args.score_thresh
    cfg.MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME = args.topk
    cfg.INPUT.MIN_SIZE_TEST = args.min_size
    cfg.INPUT.MAX_SIZE_TEST = args.max_size
    cfg.INPUT.CLIP.HALF_LENGTH = 3
    cfg.freeze()
    return cfg


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def cur_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args):
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, REPO)
    from maskprop_d2.inference import VideoPredictor, encode_frame_masks

    cfg = setup_cfg(args)
    predictor = VideoPredictor(cfg)
    n = args.length
    frames = vtest_frames(args.video, n) if args.source == "vtest" else synthetic_frames(n, seed=0)
    n_out = n_dets = n_rle_bytes = 0
    base_max = base_cur = None
    t0 = time.perf_counter()
    with torch.no_grad():
        for _frame, out in predictor(frames):
            rles = encode_frame_masks(out)
            n_dets += len(rles)
            n_rle_bytes += sum(len(r["counts"]) for r in rles.values())
            n_out += 1
            if base_max is None:  # baseline: model built + first frame output produced
                base_max, base_cur = maxrss_mib(), cur_rss_mib()
                t_first = time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    assert n_out == n, (n_out, n)
    res = dict(
        source=args.source,
        length=n,
        seconds=seconds,
        ms_per_frame=1000 * seconds / n,
        ms_per_frame_after_first=1000 * (seconds - t_first) / max(n - 1, 1),
        first_output_s=t_first,
        base_maxrss_mib=base_max,
        end_maxrss_mib=maxrss_mib(),
        peak_growth_mib=maxrss_mib() - base_max,
        base_rss_mib=base_cur,
        end_rss_mib=cur_rss_mib(),
        dets_per_frame=n_dets / n,
        video_instances=len(predictor.video_instances()),
        rle_kib=n_rle_bytes / 1024,
    )
    print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------- driver
def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    return dict(
        nproc=os.cpu_count(),
        cpu=cpu,
        python=platform.python_version(),
        torch=torch.__version__,
        platform=platform.platform(),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/synthetic/maskprop_tiny.yaml")
    p.add_argument("--weights", required=True)
    p.add_argument("--video", default="/tmp/vtest.avi")
    p.add_argument("--sources", nargs="+", default=["vtest", "synthetic"])
    p.add_argument("--lengths", nargs="+", type=int, default=[100, 200, 400, 800])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--score-thresh", type=float, default=0.05)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--min-size", type=int, default=96)
    p.add_argument("--max-size", type=int, default=160)
    p.add_argument("--out", default="")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--source", default="vtest")
    p.add_argument("--length", type=int, default=100)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    info = machine_info()
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    results = []
    common = [
        "--config", args.config, "--weights", args.weights, "--video", args.video,
        "--threads", str(args.threads), "--score-thresh", str(args.score_thresh),
        "--topk", str(args.topk), "--min-size", str(args.min_size),
        "--max-size", str(args.max_size),
    ]  # fmt: skip
    for source in args.sources:
        for n in args.lengths:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--source", source,
                   "--length", str(n)] + common  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
                raise SystemExit("worker failed: " + " ".join(cmd))
            r = json.loads(lines[-1][len("RESULT ") :])
            results.append(r)
            print(
                "{source:9s} N={length:4d}  {seconds:7.1f}s  {ms_per_frame:6.1f} ms/frame  "
                "peak growth {peak_growth_mib:6.1f} MiB  dets/frame {dets_per_frame:.2f}  "
                "instances {video_instances}".format(**r),
                flush=True,
            )
    load_after = os.getloadavg()
    md = render(args, info, started, load_before, load_after, results)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    print(md)


def render(args, info, started, load_before, load_after, results):
    cmd = "python " + " ".join([os.path.relpath(os.path.abspath(__file__), REPO)] + sys.argv[1:])
    lines = [
        "# Streaming video inference scaling (CPU)",
        "",
        "Wall time and peak memory of `VideoPredictor` streaming inference vs video length "
        "(issue 5, benchmark 3). Each row is a fresh process; frames are read with "
        "`cv2.VideoCapture` / generated one at a time, every output is consumed and its masks "
        "RLE-encoded with `encode_frame_masks`.",
        "",
        "- command: `{}`".format(cmd),
        "- date: {}".format(started.strftime("%Y-%m-%d %H:%M UTC")),
        "- machine: {} CPUs ({}), {}".format(info["nproc"], info["cpu"], info["platform"]),
        "- python {}, torch {}, torch threads {}".format(
            info["python"], info["torch"], args.threads
        ),
        "- load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; "
        "after: {:.2f} {:.2f} {:.2f}".format(*load_before, *load_after),
        "- model: `{}` + weights `{}`".format(args.config, args.weights),
        "- settings: INPUT.MIN_SIZE_TEST={}, MAX_SIZE_TEST={} (768x576 frames -> {}x{}), "
        "CLIP.HALF_LENGTH=3, INFERENCE.SCORE_THRESH={}, TOPK_PER_FRAME={}".format(
            args.min_size,
            args.max_size,
            *_resized(args.min_size, args.max_size),
            args.score_thresh,
            args.topk,
        ),  # fmt: skip
        "- sources: `vtest` = OpenCV sample vtest.avi (768x576, 795 frames; N=800 loops it, "
        "5 frames from the start again); `synthetic` = random texture + 5 moving shapes + "
        "per-frame noise, 768x576, generated on the fly",
        "- seconds: whole stream of N frames (incl. first-output latency); peak RSS growth = "
        "`ru_maxrss` at end − `ru_maxrss` after model build + first frame output",
        "",
        "| source | length | seconds | ms/frame | ms/frame after 1st | peak RSS growth MiB "
        "| baseline maxrss MiB | end RSS MiB | masks/frame (output) | video instances |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            "| {source} | {length} | {seconds:.1f} | {ms_per_frame:.1f} | "
            "{ms_per_frame_after_first:.1f} | {peak_growth_mib:.1f} | {base_maxrss_mib:.0f} | "
            "{end_rss_mib:.0f} | {dets_per_frame:.2f} | {video_instances} |".format(**r)
        )
    lines += ["", "## Linearity check", ""]
    for source in args.sources:
        rs = [r for r in results if r["source"] == source]
        if len(rs) < 2:
            continue
        ms = [r["ms_per_frame_after_first"] for r in rs]
        gr = [r["peak_growth_mib"] for r in rs]
        a, b = rs[0], rs[-1]
        lines.append(
            "- {}: ms/frame (after 1st) ranges {:.1f}–{:.1f} (max/min {:.2f}); time ratio "
            "N={}/N={}: {:.2f} for a length ratio of {:.2f}; peak RSS growth ranges "
            "{:.1f}–{:.1f} MiB (N={}→{}: {:+.1f} MiB).".format(
                source,
                min(ms),
                max(ms),
                max(ms) / min(ms),
                b["length"],
                a["length"],
                b["seconds"] / a["seconds"],
                b["length"] / a["length"],
                min(gr),
                max(gr),
                a["length"],
                b["length"],
                b["peak_growth_mib"] - a["peak_growth_mib"],
            )  # fmt: skip
        )
    lines.append("")
    return "\n".join(lines)


def _resized(min_size, max_size, w=W, h=H):
    scale = min_size / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return int(w * scale + 0.5), int(h * scale + 0.5)


if __name__ == "__main__":
    main()
