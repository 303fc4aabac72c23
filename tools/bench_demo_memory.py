#!/usr/bin/env python
"""``demo/demo.py`` on long videos: peak RSS vs. length, CPU time, output frames and fps vs input.

Per length a video of moving shapes (``--size``, 25 fps; ``--video`` adds a file) goes through
the demo in a child process (``run_isolated``: its own ``ru_maxrss`` and CPU time), tiny config.

    OMP_NUM_THREADS=1 python tools/bench_demo_memory.py --frames 500 5000 --size 640x360 \\
        --video /usr/share/doc/opencv-doc/examples/data/vtest.avi \\
        --weights output/synthetic/maskprop_tiny/model_final.pth \\
        --out benchmarks/demo_long_video_cpu.md
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402


def make_video(path, n, w, h):
    import cv2

    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    for frame in bc.video_frames("synthetic", n, (w, h)):
        vw.write(frame)
    vw.release()


def video_info(path):
    """(frames, fps) of a video as its container states them."""
    import cv2

    cap = cv2.VideoCapture(path)
    return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[500, 5000])
    p.add_argument("--size", default="640x360")
    p.add_argument("--video", action="append", default=[], help="also run on this file")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", default="")
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    config = os.path.join(bc.REPO, bc.CONFIGS["tiny"])
    rep, rows = bc.Report("Demo on long videos: peak RSS, CPU time, frames and fps (CPU)"), []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for n in a.frames:
            inputs.append(("generated {}×{}".format(w, h), os.path.join(tmp, "{}.avi".format(n))))
            make_video(inputs[-1][1], n, w, h)
        for label, path in inputs + [(os.path.basename(v), v) for v in a.video]:
            out = os.path.join(tmp, "out.mp4")
            demo = os.path.join(bc.REPO, "demo", "demo.py")
            r = bc.run_isolated([demo, "--config-file", config, "--video-input", path, "--output",
                                 out, "--overwrite", "--opts", "MODEL.WEIGHTS", a.weights])
            (n_in, fps_in), (n_out, fps_out) = video_info(path), video_info(out)
            fps = "{:g} / {:g}".format(fps_in, fps_out)
            rows.append([label, "{} / {}".format(n_in, n_out), fps,
                         "{:.0f}".format(r["peak_rss_mib"]), "{:.2f}".format(r["cpu_s"] / n_in),
                         "{:.0f}".format(r["wall_s"])])  # fmt: skip
            print(rows[-1], flush=True)
    rep.add("`{}`, weights `{}`, OMP_NUM_THREADS={}.".format(
        bc.CONFIGS["tiny"], a.weights, os.environ.get("OMP_NUM_THREADS", "unset")))
    rep.table(["input", "frames in / out", "fps in / out", "peak RSS MiB", "CPU s / frame",
               "wall s"], rows)  # fmt: skip
    rep.save(a.out)


if __name__ == "__main__":
    main()
