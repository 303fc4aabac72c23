#!/usr/bin/env python
"""Resident memory of one long stream, sampled as it runs: does it level off, and where?

``VideoPredictor`` (what ``demo/demo.py`` runs) streams ``--frames`` generated frames of
``--size`` through the tiny config at its own test size; every ``--every`` frames the process's
resident size, its peak so far (``bench_common.rss_mib``) and the tracker's ``state_size()`` are
recorded. Python objects are counted too (``gc.get_objects``): a leak of Python objects shows
there, while growth of the resident size alone is native memory (the C allocator, or a library's
cache such as oneDNN's, whose capacity ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` in the environment
sets).

    OMP_NUM_THREADS=1 python tools/trace_stream_memory.py --frames 10000 --every 500 \\
        --weights output/synthetic/maskprop_tiny/model_final.pth \\
        --out benchmarks/stream_memory_trace_cpu.md

Prefix ``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`` (Debian's ``libjemalloc2``) to
trace the same stream under jemalloc; the report names the allocator it ran with.
"""

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--every", type=int, default=500, help="sample every this many frames")
    p.add_argument("--size", default="640x360", help="generated frames, WxH")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", default="")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides")
    a = p.parse_args()
    if a.frames < 1 or a.every < 1:
        p.error("--frames and --every must be >= 1")
    w, h = (int(x) for x in a.size.split("x"))

    from maskprop_d2.inference import VideoPredictor

    cfg = bc.load_cfg("tiny", a.opts, a.weights)
    predictor = VideoPredictor(cfg)
    model_rss = bc.rss_mib()
    state = getattr(predictor.tracker, "state_size", dict)
    rows, n, t0 = [], 0, time.perf_counter()
    for _frame, _out in predictor(bc.video_frames("synthetic", a.frames, (w, h))):
        n += 1
        if n % a.every == 0 or n == a.frames:
            rss, peak = bc.rss_mib(), bc.rss_mib(peak=True)
            s = state()
            rows.append([n, "{:.0f}".format(rss), "{:.0f}".format(peak),
                         "{} / {} / {} / {}".format(s.get("features", "-"),
                                                    s.get("pending_frames", "-"),
                                                    s.get("stored_clips", "-"),
                                                    s.get("video_ids", "-")),
                         len(gc.get_objects()),
                         "{:.0f}".format(time.perf_counter() - t0)])  # fmt: skip
            print(rows[-1], flush=True)
    preload = os.environ.get("LD_PRELOAD", "")
    allocator = "jemalloc (LD_PRELOAD)" if "jemalloc" in preload else "the C library's malloc"
    rep = bc.Report("One long stream: resident memory sampled as it runs (CPU)")
    rep.add("`{}` at its test size, weights `{}`, generated {}×{} frames, allocator: {}, "
            "OMP_NUM_THREADS={}; resident size after loading the model: {:.0f} MiB.".format(
                bc.CONFIGS["tiny"], a.weights, w, h, allocator,
                os.environ.get("OMP_NUM_THREADS", "unset"), model_rss))  # fmt: skip
    rep.table(["frames", "RSS MiB", "peak RSS so far MiB",
               "features / pending frames / stored clips / IDs", "Python objects", "wall s"],
              rows)  # fmt: skip
    rep.save(a.out)


if __name__ == "__main__":
    main()
