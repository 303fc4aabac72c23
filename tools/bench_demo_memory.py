#!/usr/bin/env python
"""Demo on long videos in constant memory: peak RSS vs. video length, and the output's
frame count and fps checked against the input.

For each requested length a video of moving shapes is generated (or a given file is used, e.g.
Debian opencv-doc's ``vtest.avi``), ``demo/demo.py`` runs on it in a child process, and the
child's peak RSS is read from ``os.wait4``. The report says whether peak RSS at the longest
length is within 1.1x of the shortest.

    python tools/bench_demo_memory.py --frames 500 5000 --size 640x360 \
        [--video /usr/share/doc/opencv-doc/examples/data/vtest.avi] \
        [--weights output/synthetic/maskprop_tiny/model_final.pth] \
        --out benchmarks/demo_long_video_cpu.md
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import cpu_model, write_report  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "synthetic", "maskprop_tiny.yaml")


def make_video(path, n, w, h, fps=25.0):
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"cannot write {path}")
    rng = np.random.RandomState(0)
    bg = (rng.rand(h, w, 3) * 60 + 60).astype(np.uint8)
    for i in range(n):
        f = bg.copy()
        for k in range(3):
            cx = int((0.2 + 0.3 * k) * w + 0.1 * w * np.sin(i / (15.0 + 5 * k)))
            cy = int(h / 2 + 0.2 * h * np.cos(i / (20.0 + 3 * k)))
            cv2.circle(f, (cx, cy), max(4, h // 10), ((70 * k) % 255, 200, 255 - 60 * k), -1)
        vw.write(f)
    vw.release()


def random_weights(path):
    import torch
    from detectron2.modeling import build_model

    from maskprop_d2 import get_maskprop_cfg

    cfg = get_maskprop_cfg(CONFIG)
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, path)


def video_info(path):
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n, fps


def run_demo(video, out, weights, log):
    """(wall s, peak RSS MiB from os.wait4, RSS MiB sampled at 25% and at the end of the run)."""
    cmd = [
        sys.executable,
        os.path.join(REPO, "demo", "demo.py"),
        "--config-file",
        CONFIG,
        "--video-input",
        video,
        "--output",
        out,
        "--overwrite",
        "--opts",
        "MODEL.WEIGHTS",
        weights,
        "MODEL.DEVICE",
        "cpu",
    ]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    t0 = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    samples = []  # (s, VmRSS MiB) every 0.5 s; wait4 (not poll) so that the rusage is kept
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                kb = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
            samples.append((time.perf_counter() - t0, kb / 1024.0))
        except (OSError, StopIteration):
            pass
        time.sleep(0.5)
    secs = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        with open(log, "rb") as f:
            raise RuntimeError(f"demo failed ({proc.returncode}): {f.read().decode()[-2000:]}")
    at_25 = next((r for t, r in samples if t >= 0.25 * secs), float("nan"))
    at_end = samples[-1][1] if samples else float("nan")
    return secs, usage.ru_maxrss / 1024.0, at_25, at_end  # ru_maxrss: KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--video", action="append", default=[], help="also run on this file")
    ap.add_argument("--weights", default="", help="default: a randomly initialised tiny model")
    ap.add_argument("--out", default="benchmarks/demo_long_video_cpu.md")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))

    rows, load = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if not weights:
            weights = os.path.join(tmp, "random.pth")
            random_weights(weights)
        inputs = []
        for n in args.frames:
            path = os.path.join(tmp, f"gen_{n}.avi")
            make_video(path, n, w, h)
            inputs.append((f"generated {w}x{h}", path))
        inputs += [(os.path.basename(v), v) for v in args.video]
        for label, path in inputs:
            n_in, fps_in = video_info(path)
            out = os.path.join(tmp, "out.mp4")
            secs, rss, at_25, at_end = run_demo(path, out, weights, os.path.join(tmp, "log"))
            n_out, fps_out = video_info(out)
            rows.append(
                (label, n_in, fps_in, n_out, fps_out, secs, n_in / secs, rss, at_25, at_end)
            )
            print(rows[-1], flush=True)

    gen = [r for r in rows if r[0].startswith("generated")]
    ratio = gen[-1][7] / gen[0][7] if len(gen) > 1 else float("nan")
    lines = [
        "# Demo on long videos: frames, fps and peak RSS (CPU)",
        "",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores visible. Model: configs/synthetic/"
        f"maskprop_tiny.yaml, weights: {args.weights or 'random initialisation'}. "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}; 1-min load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. Command:",
        "`python tools/bench_demo_memory.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "| input | frames in | fps in | frames out | fps out | wall s | frames/s | peak RSS MiB "
        "| RSS at 25% / end MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        row = "| {} | {} | {:.2f} | {} | {:.2f} | {:.1f} | {:.2f} | {:.0f} | {:.0f} / {:.0f} |"
        lines.append(row.format(*r))
    lines += [
        "",
        f"Peak RSS, longest / shortest generated video: {ratio:.3f} "
        f"({'within' if ratio <= 1.1 else 'ABOVE'} the 1.1x bound).",
        "",
    ]
    ok = all(r[1] == r[3] and abs(r[2] - r[4]) < 1e-3 for r in rows)
    lines.insert(
        -1,
        "Output frame count and fps equal the input's: {}.".format(
            "yes, every run" if ok else "NO"
        ),
    )
    write_report("\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
