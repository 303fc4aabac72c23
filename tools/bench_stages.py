#!/usr/bin/env python
"""CPU time per frame of streaming MaskProp inference, by stage, against per-frame Mask R-CNN with
the same model (360p, one thread, random weights with N detections per frame:
``bench_common.fixed_detections``).

``MaskPropTracker`` streams the frames and each output is RLE-encoded. Stages are the project's
own methods, wrapped with CPU timers (the outermost timed call counts): backbone; detection (RPN +
ROI heads at whichever entry point ``detect_frame`` uses); propagation (``reduce_prop_features``
+ ``propagate``); ID assignment (``ClipTrackMatcher.assign``); mask combination
(``ClipTrackAggregator.emit``); RLE. Steady state: outputs T..T+frames-1 of 3T+frames frames,
each step one backbone pass (asserted) and one full clip. The reference (``detect_frame``, paste,
threshold, RLE) runs between two stream steps on the frame that step read: the same load.

    python tools/bench_stages.py --match-thresh 0 --out benchmarks/stages_cpu.md
"""

import argparse
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402

STAGES = ["backbone", "detection", "propagation", "ID assignment", "mask combination", "RLE"]


class StageTimer:
    """CPU seconds per stage of wrapped callables; a call inside a timed call is not timed again
    (it belongs to the outer stage)."""

    def __init__(self):
        self.seconds, self._active, self._undo = defaultdict(float), 0, []

    def timed(self, fn, stage):
        def wrapper(*args, **kwargs):
            if self._active:
                return fn(*args, **kwargs)
            self._active, t0 = 1, time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.process_time() - t0
                self._active = 0

        return wrapper

    def wrap(self, obj, attr, stage):
        """Replace ``obj.attr`` (an instance's or a class's) by its timed version."""
        self._undo.append((obj, attr, vars(obj).get(attr)))
        setattr(obj, attr, self.timed(getattr(obj, attr), stage))

    def restore(self):
        for obj, attr, old in reversed(self._undo):
            setattr(obj, attr, old) if old is not None else delattr(obj, attr)
        self._undo = []

    def snapshot(self):
        return time.process_time(), dict(self.seconds)


def run_setting(cfg, model, inputs, n):
    """(MaskProp, Mask R-CNN) CPU ms per frame by stage over ``n`` steady-state outputs."""
    import torch

    from maskprop_d2.inference import encode_frame_masks
    from maskprop_d2.modeling.mask_ops import paste_at_output_size
    from maskprop_d2.tracking import ClipTrackAggregator, FrameOutput, build_video_tracker
    from maskprop_d2.tracking.id_assignment import ClipTrackMatcher

    c = cfg.MODEL.MASKPROP.INFERENCE
    vi = build_video_tracker(cfg, model, "maskprop")
    T, heads, timer = vi.T, model.roi_heads, StageTimer()
    backbone_calls = []  # the tracker's backbone passes (a forward hook)
    hook = model.backbone.register_forward_hook(lambda *args: backbone_calls.append(1))
    timer.wrap(model.backbone, "forward", "backbone")
    timer.wrap(model.proposal_generator, "forward", "detection")
    for attr in ("forward", "detect_boxes", "forward_with_given_boxes"):
        timer.wrap(heads, attr, "detection")
    timer.wrap(heads, "reduce_prop_features", "propagation")
    timer.wrap(heads, "propagate", "propagation")
    if hasattr(heads, "propagate_crops"):  # the crop-resolution head (FINE_CROPS)
        timer.wrap(heads, "propagate_crops", "propagation")
    timer.wrap(ClipTrackMatcher, "assign", "ID assignment")
    timer.wrap(ClipTrackAggregator, "emit", "mask combination")
    encode = timer.timed(encode_frame_masks, "RLE")
    paste = timer.timed(lambda p, b, s, o: paste_at_output_size(p, b, s, o) > c.MASK_THRESH,
                        "mask combination")  # fmt: skip
    sums = {"MaskProp": defaultdict(float), "Mask R-CNN": defaultdict(float)}

    def add(kind, before):
        (t0, s0), (t1, s1) = before, timer.snapshot()
        for k in s1:
            sums[kind][k] += 1000 * (s1[k] - s0.get(k, 0.0)) / n
        sums[kind]["total"] += 1000 * (t1 - t0) / n

    try:
        with torch.no_grad():
            stream, k = vi.stream(iter(inputs)), 0
            while True:
                before, calls = timer.snapshot(), len(backbone_calls)
                out = next(stream, None)
                if out is None:
                    break
                encode(out)
                if T <= k < T + n:  # steady state
                    add("MaskProp", before)
                    assert len(backbone_calls) - calls == 1, "backbone passes in one step"
                    before, frame = timer.snapshot(), inputs[k + 2 * T]  # the frame it read
                    im, _, inst, probs = model.detect_frame(frame, 0.0, c.TOPK_PER_FRAME)
                    size = (frame["height"], frame["width"])
                    masks = paste(probs, inst.pred_boxes.tensor, im.image_sizes[0], size)
                    encode(FrameOutput(k, torch.arange(len(inst)), masks))
                    add("Mask R-CNN", before)
                    assert len(inst) == c.TOPK_PER_FRAME, (len(inst), c.TOPK_PER_FRAME)
                    del backbone_calls[-1]  # the reference's own pass is not the tracker's
                k += 1
    finally:
        timer.restore()
        hook.remove()
    assert k == len(inputs) == len(backbone_calls), (k, len(inputs), len(backbone_calls))
    return sums


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "r50"], help="aliases or files")
    p.add_argument("--instances", nargs="+", type=int, default=[5, 10], help="N dets/frame")
    p.add_argument("--frames", type=int, default=20, help="timed output frames per setting")
    p.add_argument("--video", default=bc.VTEST, help="a video file, or 'synthetic'")
    p.add_argument("--size", nargs=2, type=int, default=[640, 360], metavar=("W", "H"))
    p.add_argument("--match-thresh", type=float, default=None, help="MATCH_THRESH override")
    p.add_argument("--out", default="", help="markdown report")
    args = p.parse_args()
    bc.set_threads(1)
    import torch
    from detectron2.modeling import build_model

    rep = bc.Report("CPU time per frame by stage: streaming MaskProp vs per-frame Mask R-CNN")
    rows = []
    for name in args.configs:
        model = None
        for n in args.instances:
            opts = ["INPUT.MIN_SIZE_TEST", args.size[1], "INPUT.MAX_SIZE_TEST", 1333,
                    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
                    "MODEL.MASKPROP.INFERENCE.SCORE_THRESH", 0.0,
                    "MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME", n]  # fmt: skip
            if args.match_thresh is not None:
                opts += ["MODEL.MASKPROP.INFERENCE.MATCH_THRESH", args.match_thresh]
            cfg = bc.load_cfg(name, opts)
            T = cfg.INPUT.CLIP.HALF_LENGTH
            if model is None:  # does not depend on N
                torch.manual_seed(0)
                model = bc.fixed_detections(build_model(cfg).eval())
            assert cfg.INPUT.FORMAT == "BGR"  # and the test resize is the identity
            inputs = [{"image": torch.as_tensor(f.transpose(2, 0, 1).copy()), "height": f.shape[0],
                       "width": f.shape[1]}
                      for f in bc.video_frames(args.video, 3 * T + args.frames, tuple(args.size))]
            res = run_setting(cfg, model, inputs, args.frames)
            mp, rc = res["MaskProp"], res["Mask R-CNN"]
            rows.append([name, T, n] + ["{:.1f}".format(mp[s]) for s in STAGES]
                        + ["**{:.0f}**".format(mp["total"]), "{:.0f}".format(rc["total"]),
                           "**{:.2f}**".format(mp["total"] / rc["total"])])  # fmt: skip
            print(rows[-1], flush=True)
    rep.add("Frames: `{}`, {} timed outputs per setting, {}×{}; random weights with N "
            "detections per frame; `MATCH_THRESH` {}.".format(
                args.video, args.frames, *args.size,
                "config's" if args.match_thresh is None else args.match_thresh))  # fmt: skip
    rep.table(["config", "T", "N"] + STAGES + ["total", "Mask R-CNN", "ratio"], rows,
              "CPU ms per frame (backbone passes per frame: 1, asserted):")  # fmt: skip
    rep.save(args.out)


if __name__ == "__main__":
    main()
