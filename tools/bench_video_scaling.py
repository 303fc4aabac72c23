#!/usr/bin/env python
"""Streaming inference (``VideoPredictor``): time and peak memory vs video length and vs
instances per frame (CPU, one thread).

Each row is a fresh process (``run_isolated``): build the predictor, stream the frames one at a
time (``vtest``: looped; ``synthetic``: generated, 768×576), RLE-encode every output. Reported: CPU
ms per frame; peak RSS growth from the first output (every 100 frames, and at the end) and over
the loaded model. Instances: ``TOPK_PER_FRAME`` N, thresholds 0 (N detections a frame).

    python tools/bench_video_scaling.py --weights output/synthetic/maskprop_tiny/model_final.pth \\
        --lengths 100 200 400 800 --sources vtest synthetic --instances 1 2 5 10 20 \\
        --out benchmarks/video_scaling_cpu.md
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402


def worker(a):
    """One stream; prints its RESULT."""
    import torch

    from maskprop_d2.inference import VideoPredictor, encode_frame_masks

    bc.set_threads(1)
    opts = ["INPUT.MIN_SIZE_TEST", a.min_size, "INPUT.MAX_SIZE_TEST", a.max_size,
            "INPUT.CLIP.HALF_LENGTH", 3, "MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME", a.topk]
    if a.all_dets:
        opts += ["MODEL.MASKPROP.INFERENCE.SCORE_THRESH", 0.0]
        opts += ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0]
    cfg = bc.load_cfg(a.config, opts, a.weights)  # fmt: skip
    predictor = VideoPredictor(cfg)
    model_rss = bc.rss_mib()
    src = a.video if a.source == "vtest" else "synthetic"
    frames = bc.video_frames(src, a.length, (768, 576))
    base, growth, n = None, [], 0
    c0 = time.process_time()
    with torch.no_grad():
        for _frame, out in predictor(frames):
            encode_frame_masks(out)
            n += 1
            if base is None:
                base = bc.rss_mib(peak=True)
            if n % 100 == 0:
                growth.append(round(bc.rss_mib(peak=True) - base))
    cpu = time.process_time() - c0
    assert n == a.length, (n, a.length)
    peak = bc.rss_mib(peak=True)
    bc.emit_result(dict(cpu_ms=1000 * cpu / n, growth=peak - base, over_model=peak - model_rss,
                        timeline=growth, ids=len(predictor.video_instances())))  # fmt: skip


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="tiny")
    p.add_argument("--weights", required=True)
    p.add_argument("--video", default=bc.VTEST)
    p.add_argument("--sources", nargs="+", default=["vtest", "synthetic"])
    p.add_argument("--lengths", nargs="+", type=int, default=[100, 200, 400, 800])
    p.add_argument("--instances", nargs="*", type=int, default=[], help="TOPK_PER_FRAME values")
    p.add_argument("--instances-length", type=int, default=100)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--min-size", type=int, default=96)
    p.add_argument("--max-size", type=int, default=160)
    p.add_argument("--out", default="")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # JSON: source, length, topk, all_dets
    a = p.parse_args()
    if a.worker:
        return worker(argparse.Namespace(**dict(vars(a), **json.loads(a.worker))))

    def run(source, length, topk, all_dets=False):
        job = json.dumps(dict(source=source, length=length, topk=topk, all_dets=all_dets))
        r = bc.run_isolated([__file__, "--worker", job, "--weights", a.weights, "--config",
                             a.config, "--video", a.video, "--min-size", str(a.min_size),
                             "--max-size", str(a.max_size)], {"OMP_NUM_THREADS": "1"})  # fmt: skip
        print(source, length, topk, json.dumps(r), flush=True)
        return r

    rep = bc.Report("Streaming inference: time and memory vs video length and instances (CPU)")
    rep.add("`{}` + `{}`, frames 768×576 resized to INPUT.MIN_SIZE_TEST {} / MAX_SIZE_TEST {}, "
            "T = 3; a fresh process per row; `vtest` = `{}` (looped past its 795 frames), "
            "`synthetic` = generated.".format(a.config, a.weights, a.min_size, a.max_size,
                                              a.video))  # fmt: skip
    by_len = {s: [run(s, n, a.topk) for n in a.lengths] for s in a.sources}
    rep.table(["source", "frames", "CPU s", "CPU ms/frame", "peak RSS growth MiB",
               "growth every 100 frames", "peak over the model MiB", "video IDs"],
              [[s, n, "{:.1f}".format(r["cpu_ms"] * n / 1000), "{:.0f}".format(r["cpu_ms"]),
                "{:.0f}".format(r["growth"]), " ".join(map(str, r["timeline"])),
                "{:.0f}".format(r["over_model"]), r["ids"]]
               for s, rs in by_len.items() for n, r in zip(a.lengths, rs, strict=True)],
              "Length (TOPK_PER_FRAME {}, score threshold 0.05):".format(a.topk))  # fmt: skip
    inst = [run("vtest", a.instances_length, k, all_dets=True) for k in a.instances]
    if inst:
        rep.table(["detections/frame"] + a.instances,
                  [["CPU ms/frame"] + ["{:.0f}".format(r["cpu_ms"]) for r in inst],
                   ["peak RSS over the loaded model, MiB"]
                   + ["{:.0f}".format(r["over_model"]) for r in inst]],
                  "Instances per frame (vtest, {} frames, thresholds 0):".format(
                      a.instances_length))  # fmt: skip
    rep.save(a.out)


if __name__ == "__main__":
    main()
