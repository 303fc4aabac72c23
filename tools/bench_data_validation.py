#!/usr/bin/env python
"""CPU time of the training-data checks on YouTube-VIS-2019-sized metadata.

A generated train JSON (2,238 videos, ~61.8k frames at 720×1280, 3,774 tracks on every frame,
10 % null; an empty file per frame): ``read_json_file`` (parse), ``load_ytvis_json`` (parse +
every check), ``frame_file_problems`` (a ``stat`` per frame); compressed and list RLE counts.

    python tools/bench_data_validation.py --out benchmarks/data_validation_cpu.md
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402

H, W = 720, 1280


def generate(root, compressed, num_videos=2238, num_tracks=3774):
    """(json file, image root, frames, segmentations) of a generated train split."""
    import numpy as np
    import pycocotools.mask as mask_util

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    pool = []
    for _ in range(64):  # random ellipses as (compressed, uncompressed) counts
        (cy, cx), (ry, rx) = rng.uniform(100, (H - 100, W - 100)), rng.uniform(20, (200, 300))
        m = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)
        flat = m.flatten(order="F")
        runs = np.diff(np.r_[0, np.flatnonzero(np.diff(flat)) + 1, flat.size]).tolist()
        pool.append((mask_util.encode(np.asfortranarray(m))["counts"].decode(),
                     [0] * int(flat[0]) + runs))  # fmt: skip
    lengths = rng.integers(19, 37, size=num_videos)
    videos, annos, img_root = [], [], os.path.join(root, "JPEGImages")
    for v, n in enumerate(lengths.tolist()):
        names = ["v{:05d}/{:05d}.jpg".format(v, 5 * f) for f in range(n)]
        os.makedirs(os.path.join(img_root, "v{:05d}".format(v)))
        for name in names:
            open(os.path.join(img_root, name), "wb").close()
        videos.append({"id": v + 1, "width": W, "height": H, "length": n, "file_names": names})
    owners = np.r_[np.arange(num_videos), rng.integers(0, num_videos, num_tracks - num_videos)]
    for a, v in enumerate(owners.tolist()):
        segs = [None if rng.random() < 0.1 else
                {"size": [H, W], "counts": pool[int(rng.integers(64))][0 if compressed else 1]}
                for _ in range(int(lengths[v]))]  # fmt: skip
        annos.append({"id": a + 1, "video_id": v + 1, "category_id": int(rng.integers(1, 41)),
                      "iscrowd": 0, "segmentations": segs, "bboxes": None, "areas": None})
    path = os.path.join(root, "train.json")
    with open(path, "w") as f:
        json.dump({"videos": videos, "annotations": annos,
                   "categories": [{"id": i, "name": "c%d" % i} for i in range(1, 41)]}, f)
    segs = sum(s is not None for a in annos for s in a["segmentations"])
    return path, img_root, int(lengths.sum()), segs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="")
    a = p.parse_args()
    rep = bc.Report("Training-data validation time, YouTube-VIS-2019-sized metadata (CPU)")
    from maskprop_d2.data.validation import frame_file_problems, read_json_file
    from maskprop_d2.data.ytvis import load_ytvis_json

    def cpu(fn, *args):
        t0 = time.process_time()
        out = fn(*args)
        return time.process_time() - t0, out

    rows = []
    for compressed in (True, False):
        with tempfile.TemporaryDirectory() as root:
            path, img_root, frames, segs = generate(root, compressed)
            t_json = cpu(read_json_file, path)[0]
            t_load, recs = cpu(load_ytvis_json, path, img_root)
            t_stat, problems = cpu(frame_file_problems, recs, path)
            assert not problems
            rows.append(["compressed (str)" if compressed else "uncompressed (list)", len(recs),
                         frames, segs, "{:.0f}".format(os.path.getsize(path) / 2**20),
                         "{:.2f}".format(t_json), "{:.2f}".format(t_load),
                         "{:.2f}".format(t_stat)])  # fmt: skip
            print(rows[-1], flush=True)
    rep.table(["RLE counts", "videos", "frames", "segmentations", "JSON MiB",
               "JSON parse CPU s", "load_ytvis_json CPU s (incl. parse)",
               "frame-file stat CPU s"], rows)  # fmt: skip
    rep.save(a.out)


if __name__ == "__main__":
    main()
