#!/usr/bin/env python
"""Per-frame time of streaming MaskProp video inference, split by stage (CPU, 360p).

The real pipeline runs: ``build_video_tracker(cfg, model, "maskprop")`` (``MaskPropTracker``)
streams the frames and every output frame is RLE-encoded with ``encode_frame_masks``, as the
evaluator does. Time is attributed to stages by wrapping the existing methods with timers
(monkeypatched on the instances; torch is synchronous on CPU); nothing is re-implemented:

* backbone       ``model.backbone`` forward (ResNet + FPN)
* detection      ``model.proposal_generator`` + the ROI heads' inference, wrapped at every entry
                 point ``detect_frame`` may use (``roi_heads`` forward, ``detect_boxes``,
                 ``forward_with_given_boxes``; only the outermost call counts); split further
                 into RPN / box branch (incl. NMS) / mask branch (``_forward_mask``, with the
                 number of boxes it runs on)
* propagation    ``roi_heads.reduce_prop_features`` + ``roi_heads.propagate`` (the clip's
                 batched propagation-head call)
* ID assignment  ``ClipTrackMatcher.assign`` of the aggregator (soft-IoU matching + assignment)
* emission       ``ClipTrackAggregator.emit`` (per-ID mask averaging, resize/paste to the output
                 size, threshold; the centre frame's Mask R-CNN masks are pasted here)
* encoding       ``encode_frame_masks`` (compressed RLE of the emitted masks)
* other          total minus the sum of the above (preprocess_image, pasting the detections onto
                 the propagation grid, category votes, bookkeeping, Python overhead)

Timed calls of two stages never nest (checked), so ``other`` is well defined. Steady state is
measured, not the start or the end of the stream: output e is yielded after frame e+2T was read,
and between two outputs the stream does exactly one backbone pass, one full clip (2T+1 frames)
and one emission. The stream gets ``warmup + frames + 2T`` frames; the timed window runs from the
yield of output ``warmup-1`` to the end of encoding output ``warmup+frames-1`` (``warmup >= T``,
so the window's clips, the matcher's history and the emitted frames are all full). The backbone
passes in the window (``vi.backbone_calls``) must equal the number of frames (asserted).

Reference: per-frame Mask R-CNN with the same model, what an image model does per frame:
``detect_frame`` (backbone + detection), ``paste_at_output_size`` + threshold (reported as
emission / paste), ``encode_frame_masks``; same N. It is interleaved with the stream: after each
timed stream step (outside its timing) it processes the frame that step read, so on a shared
machine both see the same load and their ratio is meaningful.

Weights are random (``MODEL.WEIGHTS ""``: nothing can be downloaded). For a fixed, realistic
number of detections the RPN box-delta conv and the box predictor's weights are zeroed and the
class-score bias is random (``--raw-heads`` keeps the plain random init, whose boxes are
degenerate): proposals are anchors (``POST_NMS_TOPK_TEST`` of them reach the box head, as with
trained weights), a class's score is the same for every box, and ``ROI_HEADS.SCORE_THRESH_TEST
0``, ``MODEL.MASKPROP.INFERENCE.SCORE_THRESH 0``, ``TOPK_PER_FRAME N`` keep exactly N detections
per frame (checked and reported). The zeroed layers cost the same as trained ones. Random
propagation rarely links clip tracks, so frames combine more IDs than with trained weights (the
report gives the count); ``--match-thresh 0`` links every track to an overlapping ID instead.

Frames come from ``--video`` (read with OpenCV, looped if too short), or are generated (texture +
moving shapes) if the file is absent; they are resized to ``--size`` (640x360) and converted to
model inputs before timing (decoding is not timed). ``INPUT.MIN_SIZE_TEST`` = frame height and
``MAX_SIZE_TEST`` = 1333, so the network input and the output are the frame itself.

Usage::

    python tools/bench_stages.py --out benchmarks/stages_cpu.md     # tiny + R50, N = 5 and 10
    python tools/bench_stages.py --configs tiny --instances 5 --frames 3        # quick check
    python tools/bench_stages.py --configs r50 --half-length 3 --frames 10 --match-thresh 0

The PNG (stacked bars of ms/frame per stage, MaskProp next to Mask R-CNN) is written next to
``--out`` (same name, .png). Use one thread (the default) on a shared machine; the load average
is recorded before and after.
"""

import argparse
import datetime
import gc
import os
import platform
import shlex
import sys
import time
from collections import defaultdict

from bench_common import cpu_model, read_video_frames

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_ALIASES = {
    "tiny": "configs/synthetic/maskprop_tiny.yaml",
    "r50": "configs/YouTubeVIS-2019/maskprop_R50_FPN.yaml",
}
STAGES = ["backbone", "detection", "propagation", "id_assignment", "emission", "encoding"]
STAGE_LABELS = {
    "backbone": "backbone",
    "detection": "detection",
    "propagation": "propagation",
    "id_assignment": "ID assignment",
    "emission": "emission / paste",
    "encoding": "RLE encoding",
    "other": "other",
}
STAGE_COLORS = {
    "backbone": "#4c72b0",
    "detection": "#dd8452",
    "propagation": "#55a868",
    "id_assignment": "#c44e52",
    "emission": "#8172b3",
    "encoding": "#937860",
    "other": "#bbbbbb",
}


# ----------------------------------------------------------------------------- frames
def synthetic_frames(n, size, seed=0):
    """``n`` BGR uint8 frames of ``size`` = (W, H): smooth random texture, per-frame noise and a
    few moving discs / squares that bounce off the borders."""
    import cv2
    import numpy as np

    w, h = size
    rng = np.random.default_rng(seed)
    texture = cv2.resize(
        rng.integers(0, 256, (h // 10, w // 10, 3), dtype=np.uint8), (w, h), cv2.INTER_CUBIC
    )
    objs = [
        dict(
            square=bool(rng.integers(2)),
            r=int(rng.integers(20, 60)),
            p=rng.uniform([60, 60], [w - 60, h - 60]),
            v=rng.uniform(-5, 5, 2),
            c=tuple(int(x) for x in rng.integers(0, 256, 3)),
        )
        for _ in range(6)
    ]
    frames = []
    for _ in range(n):
        img = texture.astype(np.int16) + rng.integers(-10, 11, (h, w, 1), dtype=np.int16)
        img = np.clip(img, 0, 255).astype(np.uint8)
        for o in objs:
            o["p"] += o["v"]
            for d, lim in ((0, w), (1, h)):
                if o["p"][d] < o["r"] or o["p"][d] > lim - o["r"]:
                    o["v"][d] = -o["v"][d]
                    o["p"][d] = min(max(o["p"][d], o["r"]), lim - o["r"])
            x, y = int(o["p"][0]), int(o["p"][1])
            if o["square"]:
                cv2.rectangle(img, (x - o["r"], y - o["r"]), (x + o["r"], y + o["r"]), o["c"], -1)
            else:
                cv2.circle(img, (x, y), o["r"], o["c"], -1)
        frames.append(img)
    return frames


def load_frames(path, n, size):
    """(frames, description): ``n`` BGR frames of ``size`` from the video (looped), or synthetic
    frames when the file does not exist."""
    if not os.path.isfile(path):
        return synthetic_frames(n, size), "synthetic textured frames (`{}` not found)".format(path)
    try:
        frames, src_size, loops = read_video_frames(path, n, size)
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    desc = "`{}` ({}x{}), first {} frames{}, resized to {}x{}".format(
        path, src_size[0], src_size[1], n, " (looped {}x)".format(loops) if loops else "", *size
    )
    return frames, desc


def to_inputs(frames, cfg):
    """Model input dicts as ``VideoPredictor`` makes them (the resize is the identity here)."""
    import numpy as np
    import torch
    from detectron2.data import transforms as T

    aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    out = []
    for bgr in frames:
        img = bgr[:, :, ::-1] if cfg.INPUT.FORMAT == "RGB" else bgr
        h, w = img.shape[:2]
        img = aug.get_transform(img).apply_image(img)
        tensor = torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))
        out.append({"image": tensor, "height": h, "width": w})
    return out


# ----------------------------------------------------------------------------- model
def make_cfg(config, n_inst, half_length, size, match_thresh=None, dets_per_image=None):
    from detectron2.config import get_cfg

    from maskprop_d2 import add_maskprop_config

    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(config if os.path.isabs(config) else os.path.join(REPO, config))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.INPUT.MIN_SIZE_TEST = size[1]
    cfg.INPUT.MAX_SIZE_TEST = 1333
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.MASKPROP.INFERENCE.SCORE_THRESH = 0.0
    cfg.MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME = n_inst
    if half_length is not None:
        cfg.INPUT.CLIP.HALF_LENGTH = half_length
    if match_thresh is not None:
        cfg.MODEL.MASKPROP.INFERENCE.MATCH_THRESH = match_thresh
    if dets_per_image is not None:
        cfg.TEST.DETECTIONS_PER_IMAGE = dets_per_image
    cfg.freeze()
    return cfg


def build(cfg, seed, raw_heads):
    import torch
    from detectron2.modeling import build_model

    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    if not raw_heads:
        pred = model.roi_heads.box_predictor
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in (model.proposal_generator.rpn_head.anchor_deltas, pred.bbox_pred):
                layer.weight.zero_()
                layer.bias.zero_()
            pred.cls_score.weight.zero_()
            pred.cls_score.bias.copy_(torch.randn(pred.cls_score.bias.shape, generator=g))
    return model


# ----------------------------------------------------------------------------- timing
class StageTimer:
    """Accumulates wall time per stage of wrapped callables.

    A call of a stage inside a call of another stage is an error, so the stage times are
    disjoint and ``other`` = total - sum is well defined; inside a call of the same stage it is
    not timed again (only the outermost call counts), so several entry points of one stage can
    be wrapped whichever of them the code calls. A ``detail`` (a part of a stage) is timed on
    every call, nested or not.
    """

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self._active = None
        self._patched = []

    def timed(self, fn, stage=None, detail=None):
        def wrapper(*args, **kwargs):
            outer = False
            if stage is not None:
                if self._active is None:
                    self._active, outer = stage, True
                elif self._active != stage:
                    raise RuntimeError("{} called inside {}".format(stage, self._active))
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                if outer:
                    self.seconds[stage] += dt
                    self.calls[stage] += 1
                    self._active = None
                if detail is not None:
                    self.seconds[detail] += dt
                    self.calls[detail] += 1

        return wrapper

    def wrap(self, obj, attr, stage=None, detail=None, fn=None):
        """Replace ``obj.attr`` by a timed version of itself (or of ``fn``, which must call it),
        set as an instance attribute that ``restore`` removes. For an nn.Module, wrap
        ``forward``: ``__call__`` looks it up on the instance."""
        assert attr not in vars(obj), "{} already patched on {}".format(attr, obj)
        setattr(obj, attr, self.timed(fn or getattr(obj, attr), stage, detail))
        self._patched.append((obj, attr))

    def restore(self):
        for obj, attr in reversed(self._patched):
            delattr(obj, attr)
        self._patched = []

    def snapshot(self):
        return time.perf_counter(), dict(self.seconds), dict(self.calls)


DETAIL = ["rpn", "box_head", "mask_head"]


class _Window:
    """Sums the stage seconds, call counts and wall time of a set of timed steps."""

    def __init__(self):
        self.seconds, self.calls = defaultdict(float), defaultdict(int)
        self.wall, self.steps = [], 0

    def add(self, before, after):
        (t0, s0, c0), (t1, s1, c1) = before, after
        for k in s1:
            self.seconds[k] += s1[k] - s0.get(k, 0.0)
        for k in c1:
            self.calls[k] += c1[k] - c0.get(k, 0)
        self.wall.append(1000 * (t1 - t0))
        self.steps += 1

    def per_frame(self):
        """ms/frame of each stage and detection detail, total, other; per-frame wall times."""
        n = self.steps
        ms = {k: 1000 * self.seconds.get(k, 0.0) / n for k in STAGES + DETAIL}
        ms["total"] = sum(self.wall) / n
        ms["other"] = ms["total"] - sum(ms[k] for k in STAGES)
        ms["mask_boxes"] = self.calls.get("mask_boxes", 0) / n
        ms["backbone_passes"] = self.calls.get("backbone", 0) / n
        ms["frame_ms"] = list(self.wall)
        return ms


def _model_timers(timer, model):
    """backbone; detection = RPN + ROI heads at whichever entry point ``detect_frame`` uses
    (``roi_heads(...)``, or its two inference steps ``detect_boxes`` and
    ``forward_with_given_boxes``), with RPN, box branch and mask branch as details; counts the
    boxes the mask head runs on (``calls["mask_boxes"]``)."""
    heads = model.roi_heads
    timer.wrap(model.backbone, "forward", "backbone")
    timer.wrap(model.proposal_generator, "forward", "detection", "rpn")
    timer.wrap(heads, "forward", "detection")
    timer.wrap(heads, "forward_with_given_boxes", "detection")
    timer.wrap(heads, "detect_boxes", "detection", "box_head")
    mask = heads._forward_mask

    def counted_mask(features, instances):
        timer.calls["mask_boxes"] += sum(len(i) for i in instances)
        return mask(features, instances)

    timer.wrap(heads, "_forward_mask", "detection", "mask_head", counted_mask)


def run_setting(cfg, model, inputs, warmup, n, ref_warmup):
    """Stream ``inputs`` (warmup + n + 2T frames) through VideoInference and time the
    steady-state window of ``n`` outputs by stage; interleaved with it (between two stream steps,
    outside their timing) the per-frame Mask R-CNN reference runs on the frame the step read, so
    both see the same machine load. Returns (MaskProp, Mask R-CNN) results."""
    import torch

    from maskprop_d2.inference import encode_frame_masks
    from maskprop_d2.modeling.mask_ops import paste_at_output_size
    from maskprop_d2.tracking import FrameOutput, build_video_tracker

    c = cfg.MODEL.MASKPROP.INFERENCE
    vi = build_video_tracker(cfg, model, "maskprop")
    T = vi.T
    assert len(inputs) == warmup + n + 2 * T, (len(inputs), warmup, n, T)
    timer = StageTimer()
    _model_timers(timer, model)
    timer.wrap(model.roi_heads, "reduce_prop_features", "propagation")
    timer.wrap(model.roi_heads, "propagate", "propagation")
    clips = {}  # clip centre -> (number of tracks, number of frames)
    combined = {}  # emitted frame -> number of IDs combined there
    reset = vi.reset

    def reset_and_wrap():  # stream() builds a new aggregator: wrap that one
        reset()
        matcher = vi._tracks._matcher
        assign = matcher.assign

        def counted_assign(t, frames, masks, *args, **kwargs):
            clips[t] = (int(masks.shape[0]), len(frames))
            return assign(t, frames, masks, *args, **kwargs)

        timer.wrap(matcher, "assign", "id_assignment", fn=counted_assign)
        agg = vi._tracks
        timer.wrap(agg, "emit", "emission")
        emit = agg.emit

        def counted_emit(tau):  # IDs the frame combines (visible or not): emission's cost driver
            ids = [e[0] for e in agg._pending.get(tau, []) + agg._full_res.get(tau, [])]
            combined[tau] = len(torch.unique(torch.cat(ids))) if ids else 0  # not timed
            return emit(tau)

        agg.emit = counted_emit  # replaces the timed instance attribute, which it calls

    vi.reset = reset_and_wrap
    encode = timer.timed(encode_frame_masks, "encoding")

    def paste(probs, boxes, image_size, out_size):
        return paste_at_output_size(probs, boxes, image_size, out_size) > c.MASK_THRESH

    paste = timer.timed(paste, "emission")

    def maskrcnn_frame(k, frame):  # what a per-frame image model does
        images, _, inst, probs = model.detect_frame(frame, c.SCORE_THRESH, c.TOPK_PER_FRAME)
        size = (frame["height"], frame["width"])
        masks = paste(probs, inst.pred_boxes.tensor, images.image_sizes[0], size)
        encode(FrameOutput(k, torch.arange(len(inst)), masks))
        return len(inst)

    mp, rc = _Window(), _Window()
    out_masks, ref_dets, k = [], [], 0
    gc.collect()
    try:
        with torch.no_grad():
            stream = vi.stream(iter(inputs))
            while True:
                before, calls0 = timer.snapshot(), vi.backbone_calls
                out = next(stream, None)
                if out is None:
                    break
                assert out.frame_idx == k, (out.frame_idx, k)
                rles = encode(out)
                after = timer.snapshot()
                if warmup <= k < warmup + n:
                    mp.add(before, after)
                    out_masks.append(len(rles))
                    assert vi.backbone_calls - calls0 == 1, "backbone passes in a step"
                if warmup - ref_warmup <= k < warmup + n:
                    before = timer.snapshot()
                    dets = maskrcnn_frame(k, inputs[k + 2 * T])  # the frame this step read
                    if k >= warmup:
                        rc.add(before, timer.snapshot())
                        ref_dets.append(dets)
                k += 1
    finally:
        timer.restore()
    assert k == len(inputs), "stream yielded {} of {} frames".format(k, len(inputs))
    assert vi.backbone_calls == len(inputs), (vi.backbone_calls, len(inputs))
    mp_res, rc_res = mp.per_frame(), rc.per_frame()
    assert mp_res["backbone_passes"] == 1, mp_res["backbone_passes"]
    window_clips = [clips[t] for t in range(warmup + T, warmup + n + T)]  # clips in the window
    assert all(x[1] == 2 * T + 1 for x in window_clips), "window clips are not full-length"
    dets = [x[0] for x in window_clips]
    mp_res.update(
        dets_min=min(dets),
        dets_mean=sum(dets) / n,
        dets_max=max(dets),
        out_masks=sum(out_masks) / n,
        combined_ids=sum(combined[e] for e in range(warmup, warmup + n)) / n,
        ids=vi.state_size()["video_ids"],
        T=T,
    )
    rc_res.update(dets_min=min(ref_dets), dets_mean=sum(ref_dets) / n, dets_max=max(ref_dets))
    return mp_res, rc_res


# ----------------------------------------------------------------------------- report
def _git_state():
    """Commit and the uncommitted changes of the package (the code being timed)."""
    import subprocess

    def git(*a):
        r = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return r.stdout.rstrip() if r.returncode == 0 else ""  # keep status' leading blanks

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [ln[3:] for ln in git("status", "--porcelain", "--", "maskprop_d2").splitlines()]
    return "git {}{}".format(
        sha, ", uncommitted changes in " + ", ".join(dirty) if dirty else ", clean maskprop_d2/"
    )


def _median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def _dets(r):
    if r["dets_min"] == r["dets_max"]:
        return str(r["dets_min"])
    return "{}–{} (mean {:.1f})".format(r["dets_min"], r["dets_max"], r["dets_mean"])


def render(args, info, started, load_before, load_after, frames_desc, rows, png_name):
    cmd = "python " + " ".join(
        [os.path.relpath(os.path.abspath(__file__), REPO)] + [shlex.quote(a) for a in sys.argv[1:]]
    )
    md = [
        "# Per-frame time of streaming MaskProp inference by stage (CPU, {}p)".format(
            args.size[1]
        ),
        "",
        "`VideoInference` (`build_video_inference(cfg, model, \"maskprop\")`) streams the frames "
        "and every output frame is RLE-encoded with `encode_frame_masks`; each stage is timed by "
        "wrapping the existing method on the instance (see the docstring of "
        "`tools/bench_stages.py`). Steady-state window: outputs {w}..{e} of a stream of "
        "warmup + frames + 2T frames (one backbone pass, one full 2T+1-frame clip, one emission "
        "and one encoding per output). Reference: per-frame Mask R-CNN of the same model "
        "(`detect_frame` + `paste_at_output_size` + threshold + `encode_frame_masks`), run "
        "between two stream steps (outside their timing) on the frame the step read, so both "
        "see the same machine load; {wr} warm-up frame(s).".format(
            w="T" if args.warmup is None else args.warmup,
            e="T+{}".format(args.frames - 1)
            if args.warmup is None
            else args.warmup + args.frames - 1,
            wr=args.ref_warmup,
        ),
        "",
        "- command: `{}`".format(cmd),
        "- date: {}".format(started.strftime("%Y-%m-%d %H:%M UTC")),
        "- machine: {} CPUs ({}), {}".format(info["nproc"], info["cpu"], info["platform"]),
        "- code: {}".format(info["code"]),
        "- python {}, torch {}, torch threads {} (OMP_NUM_THREADS={})".format(
            info["python"], info["torch"], args.threads, os.environ.get("OMP_NUM_THREADS")
        ),
        "- load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} "
        "{:.2f}".format(*load_before, *load_after),
        "- frames: {}; network input = output = {}x{} (INPUT.MIN_SIZE_TEST {}, MAX_SIZE_TEST "
        "1333)".format(frames_desc, args.size[0], args.size[1], args.size[1]),
        "- model: random init (MODEL.WEIGHTS \"\", seed {}){}; ROI_HEADS.SCORE_THRESH_TEST 0, "
        "MASKPROP.INFERENCE.SCORE_THRESH 0, TOPK_PER_FRAME = N".format(
            args.seed,
            ""
            if args.raw_heads
            else "; RPN box deltas and box predictor zeroed, random class bias (proposals = "
            "anchors, N detections per frame)",
        ),
        "- timed: {} output frames per setting; ms/frame = mean over the window; 'median' = "
        "median of the per-frame wall times".format(args.frames),
        "",
        "| config | file | classes | RPN proposals (POST_NMS_TOPK_TEST) | "
        "TEST.DETECTIONS_PER_IMAGE | propagation head | MATCH_THRESH | MASK_THRESH | "
        "CENTER_MASK |",
        "|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for row in {r["name"]: r for r in rows}.values():
        md.append(
            "| {name} | `{config}` | {classes} | {proposals} | {dets_per_image} | {prop_head} | "
            "{match_thresh:g} | {mask_thresh:g} | {center_mask} |".format(**row)
        )
    md += [
        "",
        "## MaskProp, ms/frame by stage (share of the total)",
        "",
        "| config | T | N (dets/frame) | backbone | detection | propagation | ID assignment | "
        "emission | RLE encoding | other | **total** | median | backbone passes/frame | "
        "Mask R-CNN | MaskProp / Mask R-CNN |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        mp, rc = row["maskprop"], row["maskrcnn"]

        def cell(k, r=mp):
            return "{:.1f} ({:.0f}%)".format(r[k], 100 * r[k] / r["total"])

        md.append(
            "| {} | {} | {} ({}) | {} | **{:.1f}** | {:.1f} | {:g} | {:.1f} | **{:.2f}** |".format(
                row["name"],
                mp["T"],
                row["n"],
                _dets(mp),
                " | ".join(cell(k) for k in STAGES + ["other"]),
                mp["total"],
                _median(mp["frame_ms"]),
                mp["backbone_passes"],
                rc["total"],
                mp["total"] / rc["total"],
            )
        )
    md += [
        "",
        "## Per-frame Mask R-CNN reference, ms/frame by stage",
        "",
        "| config | N (dets/frame) | backbone | detection | paste + threshold | RLE encoding | "
        "other | **total** | median |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rc = row["maskrcnn"]
        md.append(
            "| {} | {} ({}) | {:.1f} | {:.1f} | {:.1f} | {:.2f} | {:.1f} | **{:.1f}** | {:.1f} "
            "|".format(
                row["name"],
                row["n"],
                _dets(rc),
                rc["backbone"],
                rc["detection"],
                rc["emission"],
                rc["encoding"],
                rc["other"],
                rc["total"],
                _median(rc["frame_ms"]),
            )
        )
    md += [
        "",
        "## Detection split (MaskProp run; the reference runs the same `detect_frame`)",
        "",
        "| config | N | RPN | box branch (incl. NMS) | mask branch | rest | boxes through the "
        "mask head /frame | detection total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        mp = row["maskprop"]
        rest = mp["detection"] - mp["rpn"] - mp["box_head"] - mp["mask_head"]
        md.append(
            "| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.1f} |".format(
                row["name"], row["n"], mp["rpn"], mp["box_head"], mp["mask_head"], rest,
                mp["mask_boxes"], mp["detection"],
            )
        )
    md += [
        "",
        "## Checks",
        "",
        "| config | N | clip frames (2T+1) | MaskProp dets/frame | IDs combined/frame (max "
        "(2T+1)·N) | output masks/frame | IDs in the stream | Mask R-CNN dets/frame | backbone "
        "passes/frame |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        mp, rc = row["maskprop"], row["maskrcnn"]
        md.append(
            "| {} | {} | {} | {} | {:.1f} ({}) | {:.1f} | {} | {} | {:g} |".format(
                row["name"],
                row["n"],
                2 * mp["T"] + 1,
                _dets(mp),
                mp["combined_ids"],
                (2 * mp["T"] + 1) * row["n"],
                mp["out_masks"],
                mp["ids"],
                _dets(rc),
                mp["backbone_passes"],
            )
        )
    md += ["", "![ms/frame by stage]({})".format(png_name), "", "## Reading", ""]
    md += reading(rows)
    md.append("")
    return "\n".join(md)


def reading(rows):
    """Statements computed from the numbers (the same sentences whatever the numbers are)."""
    out = []
    for row in rows:
        mp, rc = row["maskprop"], row["maskrcnn"]
        tot, n = mp["total"], row["n"]
        top = max(STAGES + ["other"], key=lambda k: mp[k])
        out.append(
            "- **{}, T = {}, N = {}**: {:.0f} ms/frame, **{:.2f}×** the per-frame Mask R-CNN "
            "({:.0f} ms/frame). Largest stage: {} ({:.0f}%); backbone + detection, the part "
            "shared with Mask R-CNN, {:.0f}%. Propagation {:.0f} ms ({:.0f}%), ID assignment "
            "{:.1f} ms ({:.1f}%), emission {:.1f} ms ({:.0f}%; Mask R-CNN's paste + threshold "
            "{:.1f} ms), RLE {:.1f} ms, other {:.1f} ms. MaskProp − Mask R-CNN = {:+.0f} "
            "ms/frame. The shared part (backbone + detection, same code) took {:.0f} ms here "
            "and {:.0f} ms in the reference ({:+.0f}%: the measurement noise).".format(
                row["name"], mp["T"], n, tot, tot / rc["total"], rc["total"], STAGE_LABELS[top],
                100 * mp[top] / tot, 100 * (mp["backbone"] + mp["detection"]) / tot,
                mp["propagation"], 100 * mp["propagation"] / tot, mp["id_assignment"],
                100 * mp["id_assignment"] / tot, mp["emission"], 100 * mp["emission"] / tot,
                rc["emission"], mp["encoding"], mp["other"], tot - rc["total"],
                mp["backbone"] + mp["detection"], rc["backbone"] + rc["detection"],
                100 * ((mp["backbone"] + mp["detection"]) / (rc["backbone"] + rc["detection"]) - 1),
            )
        )
        if mp["mask_boxes"] > n:
            out.append(
                "  - Detection: the mask head runs on {:.0f} boxes per frame "
                "(TEST.DETECTIONS_PER_IMAGE {}) although only the top N = {} are kept "
                "afterwards (`detect_frame` filters after `roi_heads`): mask branch {:.0f} ms "
                "= {:.0f}% of the MaskProp frame; box branch {:.0f} ms, RPN {:.0f} ms.".format(
                    mp["mask_boxes"], row["dets_per_image"], n, mp["mask_head"],
                    100 * mp["mask_head"] / tot, mp["box_head"], mp["rpn"],
                )
            )
        if mp["combined_ids"] > 1.5 * n:
            out.append(
                "  - Emission combines {:.1f} IDs per frame for N = {} detections (at most "
                "(2T+1)·N = {}): with random weights few clip tracks get linked, so each frame "
                "carries many single-clip IDs. Emission works on one full-size canvas per "
                "combined ID ({:.1f} ms per ID here), so emission and RLE are upper bounds; "
                "tracks that link (trained weights, or `--match-thresh 0`) give about N IDs "
                "per frame.".format(
                    mp["combined_ids"], n, (2 * mp["T"] + 1) * n,
                    mp["emission"] / max(mp["combined_ids"], 1e-9),
                )
            )
    by_cfg = defaultdict(list)
    for row in rows:
        by_cfg[row["name"]].append(row)
    for name, rs in by_cfg.items():
        if len(rs) < 2:
            continue
        a, b = rs[0], rs[-1]
        d = {k: b["maskprop"][k] - a["maskprop"][k] for k in STAGES + ["other", "total"]}
        grow = max(STAGES + ["other"], key=lambda k: d[k])
        out.append(
            "- {}: N = {} → {} changes the MaskProp total by {:+.0f} ms/frame (propagation "
            "{:+.0f}, ID assignment {:+.1f}, emission {:+.0f}, RLE {:+.1f}, detection {:+.0f}; "
            "largest: {}); MaskProp / Mask R-CNN {:.2f} → {:.2f}.".format(
                name, a["n"], b["n"], d["total"], d["propagation"], d["id_assignment"],
                d["emission"], d["encoding"], d["detection"], STAGE_LABELS[grow],
                a["maskprop"]["total"] / a["maskrcnn"]["total"],
                b["maskprop"]["total"] / b["maskrcnn"]["total"],
            )
        )
    out.append(
        "- The backbone runs exactly once per frame in every setting (asserted: backbone "
        "passes / frames = 1 in the window and over the whole stream). On a shared machine the "
        "times are preliminary: compare the median with the mean, and the load average."
    )
    return out


def plot(rows, path, size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["name"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names) + 1, 5.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rs = [r for r in rows if r["name"] == name]
        labels, xs = [], []
        for i, r in enumerate(rs):
            for j, (kind, res) in enumerate((("MaskProp", r["maskprop"]), ("Mask R-CNN",
                                                                         r["maskrcnn"]))):
                x = 2.6 * i + j
                bottom = 0.0
                for k in STAGES + ["other"]:
                    v = max(res[k], 0.0)
                    label = STAGE_LABELS[k] if (ax is axes[0][0] and i == 0 and j == 0) else None
                    ax.bar(x, v, bottom=bottom, color=STAGE_COLORS[k], width=0.85, label=label)
                    bottom += v
                ax.text(x, res["total"], "{:.0f}".format(res["total"]), ha="center",
                        va="bottom", fontsize=8)
                xs.append(x)
                labels.append("{}\nN={}".format(kind, r["n"]))
            top = max(r["maskprop"]["total"], r["maskrcnn"]["total"])
            ax.text(2.6 * i + 0.5, top * 1.06, "×{:.2f}".format(
                r["maskprop"]["total"] / r["maskrcnn"]["total"]), ha="center", fontsize=8,
                color="#444444")
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("ms / frame")
        ax.set_title("{} (T={})".format(name, rs[0]["maskprop"]["T"]), fontsize=10)
        ax.set_ylim(0, 1.15 * max(max(r["maskprop"]["total"], r["maskrcnn"]["total"]) for r in rs))
    fig.legend(loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("ms/frame by stage, {}x{} frames; ×r = MaskProp / per-frame Mask R-CNN".format(
        *size), fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "r50"],
                   help="config files or aliases: " + ", ".join(CONFIG_ALIASES))
    p.add_argument("--instances", nargs="+", type=int, default=[5, 10],
                   help="detections per frame N (TOPK_PER_FRAME)")
    p.add_argument("--half-length", type=int, default=None,
                   help="override INPUT.CLIP.HALF_LENGTH (default: each config's own)")
    p.add_argument("--frames", type=int, default=20, help="timed output frames per setting")
    p.add_argument("--warmup", type=int, default=None,
                   help="outputs before the timed window (default and minimum: T)")
    p.add_argument("--ref-warmup", type=int, default=1,
                   help="warm-up frames of the Mask R-CNN reference (<= --warmup)")
    p.add_argument("--video", default="/tmp/vtest.avi")
    p.add_argument("--size", nargs=2, type=int, default=[640, 360], metavar=("W", "H"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--match-thresh", type=float, default=None,
                   help="override MODEL.MASKPROP.INFERENCE.MATCH_THRESH (e.g. 0: every track "
                   "joins an overlapping ID, as when tracking works)")
    p.add_argument("--dets-per-image", type=int, default=None,
                   help="override TEST.DETECTIONS_PER_IMAGE (boxes the mask head runs on)")
    p.add_argument("--raw-heads", action="store_true",
                   help="keep the random RPN/box-predictor init (detections are then degenerate)")
    p.add_argument("--out", default="", help="markdown report; the PNG goes next to it")
    args = p.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MKL_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, REPO)
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    size = tuple(args.size)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    info = dict(nproc=os.cpu_count(), cpu=cpu_model(), python=platform.python_version(),
                torch=torch.__version__, platform=platform.platform(), code=_git_state())

    plans = []  # (name, path, n, cfg)
    for c in args.configs:
        path = CONFIG_ALIASES.get(c, c)
        for n in args.instances:
            plans.append((c, path, n, make_cfg(path, n, args.half_length, size,
                                               args.match_thresh, args.dets_per_image)))
    need = 0
    for _, _, _, cfg in plans:
        T = cfg.INPUT.CLIP.HALF_LENGTH
        warmup = T if args.warmup is None else args.warmup
        if warmup < max(T, 1):
            raise SystemExit("--warmup must be at least T = {} (and >= 1)".format(T))
        need = max(need, warmup + args.frames + 2 * T)
        if args.ref_warmup > warmup:
            raise SystemExit("--ref-warmup must not exceed the warm-up ({})".format(warmup))
    frames, frames_desc = load_frames(args.video, need, size)

    rows, model, model_key = [], None, None
    for name, path, n, cfg in plans:
        if model_key != path:  # the model does not depend on N: build once per config
            model, model_key = build(cfg, args.seed, args.raw_heads), path
        T = cfg.INPUT.CLIP.HALF_LENGTH
        warmup = T if args.warmup is None else args.warmup
        inputs = to_inputs(frames[: warmup + args.frames + 2 * T], cfg)
        load0 = os.getloadavg()[0]
        mp, rc = run_setting(cfg, model, inputs, warmup, args.frames, args.ref_warmup)
        c, ph = cfg.MODEL.MASKPROP.INFERENCE, cfg.MODEL.ROI_MASK_PROP_HEAD
        row = dict(name=name, config=path, n=n, maskprop=mp, maskrcnn=rc,
                   load=(load0, os.getloadavg()[0]), match_thresh=c.MATCH_THRESH,
                   mask_thresh=c.MASK_THRESH, center_mask=c.CENTER_MASK,
                   dets_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
                   proposals=cfg.MODEL.RPN.POST_NMS_TOPK_TEST,
                   classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
                   prop_head="{}, D {}, ROI {}".format(ph.IN_FEATURE, ph.CONV_DIM, ph.ROI_SIZE))
        rows.append(row)
        print("{:5s} T={} N={:2d} dets {}/{}  ".format(name, T, n, _dets(mp), _dets(rc))
              + "  ".join("{} {:.1f}".format(k, mp[k]) for k in STAGES + ["other"])
              + "  | total {:.1f} ms/frame (median {:.1f}); Mask R-CNN {:.1f}; ratio {:.2f}; "
              "load {:.2f}->{:.2f}".format(mp["total"], _median(mp["frame_ms"]), rc["total"],
                                           mp["total"] / rc["total"], *row["load"]), flush=True)
        for k, r in (("MaskProp", mp), ("Mask R-CNN", rc)):
            if r["dets_min"] != n or r["dets_max"] != n:
                print("WARNING: {} got {} detections per frame, asked {}".format(
                    k, _dets(r), n), flush=True)

    load_after = os.getloadavg()
    png = os.path.splitext(args.out)[0] + ".png" if args.out else ""
    md = render(args, info, started, load_before, load_after, frames_desc, rows,
                os.path.basename(png) if png else "(no --out: no plot)")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(md)
        plot(rows, png, size)
        print("wrote {} and {}".format(args.out, png))
    print(md)


if __name__ == "__main__":
    main()
