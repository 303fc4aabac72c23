#!/usr/bin/env python
"""Propagation-head variants compared on one frozen detector: each arm trains only the
propagation head (``configs/synthetic/maskprop_propstage_tiny.yaml``: the quickstart model's
detector loaded and frozen, ``MODEL.MASKPROP.TRAIN_PROPAGATION_ONLY``, 600 iterations) with its
own head options, then ``tools/prop_head_accuracy.py`` scores it (GT centre masks propagated to
the clip's other frames, hard and soft IoU at the output resolution). The first row is the joint
model itself, the last the OpenCV DIS flow warp of the same masks.

    python tools/prop_stage_ablation.py --weights output/synthetic/maskprop_tiny/model_final.pth \\
        --out benchmarks/prop_stage_ablation_synthetic.md

An arm whose ``model_final.pth`` exists under ``--work`` is not trained again (delete it to
retrain), as ``make train`` does.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402

STAGE_CONFIG = "configs/synthetic/maskprop_propstage_tiny.yaml"
# name -> head options of the arm (what differs from the joint model's head)
ARMS = {
    "the paper's head (offsets from f_t - f_t+δ)": [
        "MODEL.ROI_MASK_PROP_HEAD.OFFSET_INPUT", "difference"],
    "+ correlation volume in the offset branch (r = 3)": [
        "MODEL.ROI_MASK_PROP_HEAD.OFFSET_INPUT", "correlation"],
    "+ source mask warped by the centre tap's offsets": [
        "MODEL.ROI_MASK_PROP_HEAD.MASK_WARP", "True"],
    "+ per-pixel cross-entropy in the loss (BCE_WEIGHT 1)": [
        "MODEL.ROI_MASK_PROP_HEAD.BCE_WEIGHT", "1.0"],
    "twice as wide (CONV_DIM 32), new weights trained by the stage": [
        "MODEL.ROI_MASK_PROP_HEAD.CONV_DIM", "32"],
}  # fmt: skip
HEAD_ROW = re.compile(r"^\| MaskProp head [^|]*\|(.*)\|\s*$")
FLOW_ROW = re.compile(r"^\| OpenCV DIS flow warp [^|]*\|(.*)\|\s*$")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower())[:40].strip("_")


def read_rows(lines):
    """(head cells, flow cells) of the first table of a ``prop_head_accuracy.py`` report (its
    second table names the same settings); None where a row is missing."""
    head = flow = None
    for line in lines:
        m, n = HEAD_ROW.match(line), FLOW_ROW.match(line)
        head = head or ([c.strip() for c in m.group(1).split("|")] if m else None)
        flow = flow or ([c.strip() for c in n.group(1).split("|")] if n else None)
    return head, flow


def accuracy_rows(weights, opts, num_clips, py):
    """(head cells, flow cells) of ``prop_head_accuracy.py`` for ``weights`` with ``opts``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pq.md")
        cmd = [py, os.path.join(bc.REPO, "tools", "prop_head_accuracy.py"), "--weights", weights,
               "--num-clips", str(num_clips), "--out", out]  # fmt: skip
        if opts:
            cmd += ["--opts"] + opts
        subprocess.run(cmd, check=True, cwd=bc.REPO, stdout=subprocess.DEVNULL)
        with open(out) as f:
            head, flow = read_rows(f)
    if head is None or flow is None:
        raise RuntimeError("prop_head_accuracy.py wrote no head/flow row for " + weights)
    return head, flow


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--weights", required=True, help="the jointly trained tiny model")
    p.add_argument("--work", default="output/prop_stage_ablation", help="the arms' training dirs")
    p.add_argument("--num-clips", type=int, default=48)
    p.add_argument("--out", default="")
    a = p.parse_args()
    py = sys.executable
    rep = bc.Report("Propagation head variants on one frozen detector (synthetic)")
    head, flow = accuracy_rows(a.weights, [], a.num_clips, py)
    rows = [["joint training only (the weights given)", "–"] + head]
    for name, opts in ARMS.items():
        out_dir = os.path.join(a.work, slug(name))
        final = os.path.join(out_dir, "model_final.pth")
        if not os.path.exists(final):
            subprocess.run([py, os.path.join(bc.REPO, "train_net.py"), "--config-file",
                            os.path.join(bc.REPO, STAGE_CONFIG), "MODEL.WEIGHTS", a.weights,
                            "OUTPUT_DIR", out_dir, "DATASETS.TEST", "()"] + opts,
                           check=True, cwd=bc.REPO)  # fmt: skip
        rows.append([name, "600"] + accuracy_rows(final, opts, a.num_clips, py)[0])
        print(rows[-1], flush=True)
    rows.append(["OpenCV DIS flow warp (image resolution)", "–"] + flow)
    rep.add("Each arm: `python train_net.py --config-file {} MODEL.WEIGHTS {} <options>` (only "
            "the propagation head trains, on the frozen detector), then `python "
            "tools/prop_head_accuracy.py --num-clips {}` on `synthetic_ytvis_val` (T = 3, output "
            "resolution).".format(STAGE_CONFIG, a.weights, a.num_clips))
    rep.table(["propagation head", "stage iterations", "soft IoU", "hard IoU",
               "soft IoU at δ = ±1 / ±2 / ±3", "hard IoU at δ = ±1 / ±2 / ±3"], rows)
    rep.save(a.out)


if __name__ == "__main__":
    main()
