#!/usr/bin/env python
"""Cost of ``DATASETS.VERIFY_FRAMES: "decode"`` (decode every training frame before iteration 0)
against the default ``"exists"`` (one ``stat`` per frame), on YouTube-VIS-2019-sized frames.

Writes ``--videos`` x ``--frames`` JPEG frames of 1280x720 (a textured image, JPEG quality 90,
about the size of a YouTube-VIS frame) and times ``frame_file_problems`` both ways (CPU seconds,
one process); the per-frame cost is extrapolated to the 61,793 frames of the YouTube-VIS-2019
train split (``benchmarks/data_validation_cpu.md``).

    python tools/bench_verify_frames.py --out benchmarks/verify_frames_cpu.md
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402

H, W = 720, 1280
YTVIS19_TRAIN_FRAMES = 61793


def write_frames(root, videos, frames):
    """Video records (``load_ytvis_json``'s form) of generated frames under ``root``."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    records, sizes = [], []
    for v in range(videos):
        os.makedirs(os.path.join(root, f"v{v:03d}"))
        names = []
        for f in range(frames):
            phase = rng.uniform(0, 6.28, 3)
            img = np.stack([127 + 60 * np.sin(xx / (40 + 9 * c) + yy / 70 + phase[c])
                            for c in range(3)], axis=2)
            img += rng.normal(0, 12, img.shape)
            path = os.path.join(root, f"v{v:03d}", f"{5 * f:05d}.jpg")
            cv2.imwrite(path, np.clip(img, 0, 255).astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            sizes.append(os.path.getsize(path))
            names.append(path)
        records.append({"video_id": v + 1, "file_names": names, "height": H, "width": W})
    return records, sizes


def cpu(fn, *a, **k):
    t0 = time.process_time()
    out = fn(*a, **k)
    return time.process_time() - t0, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--out", default="", help="markdown report (default: print only)")
    a = ap.parse_args(argv)
    bc.set_threads(1)
    from maskprop_d2.data.validation import frame_file_problems

    rep = bc.Report("Verifying training frames up front: stat vs decode (CPU)")
    with tempfile.TemporaryDirectory(prefix="bench_verify_frames_") as root:
        records, sizes = write_frames(root, a.videos, a.frames)
        n = len(sizes)
        frame_file_problems(records[:1], "warm-up", decode=True)
        t_stat, p1 = cpu(frame_file_problems, records, "bench", decode=False)
        t_dec, p2 = cpu(frame_file_problems, records, "bench", decode=True)
    assert not p1 and not p2, (p1, p2)
    rows = []
    for mode, t in (("exists (stat)", t_stat), ("decode (+ size check)", t_dec)):
        per = t / n
        rows.append([mode, n, "{:.3f}".format(t), "{:.3f}".format(1000 * per),
                     "{:.0f}".format(per * YTVIS19_TRAIN_FRAMES)])
    rep.add("{} frames of {}x{} (JPEG quality 90, mean {:.0f} KiB); the YouTube-VIS-2019 column "
            "multiplies the per-frame CPU time by its {:,} train frames (one process).".format(
                n, W, H, sum(sizes) / n / 1024, YTVIS19_TRAIN_FRAMES))
    rep.table(["DATASETS.VERIFY_FRAMES", "frames", "CPU s", "ms / frame",
               "YouTube-VIS-2019 train, CPU s"], rows)
    rep.save(a.out)


if __name__ == "__main__":
    main()
