#!/usr/bin/env python
"""Time and peak memory of the mask propagation head, alone or against the Mask R-CNN forward
of the same frame (CPU, no grad).

One "clip" is what streaming inference (``maskprop_d2.tracking.MaskPropTracker``) does per video
frame at steady state: reduce the new frame's feature once (1×1 conv; the other frames' reduced
features are cached), then propagate the ``n_inst`` detections of the clip centre t to the 2T+1
frames t-T..t+T (the centre itself included, as ``_process_clip`` does) in one batched head call:
offsets and attention for the 2T+1 pairs, ``rows = n_inst * (2T+1)`` deformable-conv rows, and
in ROI mode the paste back to the frame. ``--exclude-center`` drops the centre pair (2T pairs).

Feature sizes follow detectron2's padding of a 360×640 frame (``--image-size``) to a multiple of
32 (384×640): p2 (stride 4) 96×160, p3 (stride 8) 48×80, p4 (stride 16) 24×40. Instances are
filled boxes of about 96×96 input pixels (``--inst-px``). Peak memory is the growth of the
process's max RSS (``resource.getrusage``) over a baseline taken after the inputs (and the model)
are built; every setting runs in a fresh subprocess so each high-water mark is that setting's own.

Comparison mode (``--configs``/``--config-file``): for each config, one subprocess builds the
model (random init, ``MODEL.WEIGHTS ""``: timings do not depend on the weights) and times on a
360×640 random uint8 frame (a) the backbone alone and (b) the full per-frame Mask R-CNN forward
``model([{"image", "height", "width"}])`` with exactly k detections (score threshold 0, at most k
per image) for every instance count k of the grid, so the mask head runs on as many boxes as the
propagation head propagates. With random weights the RPN's box deltas are huge (no normalisation
in FrozenBN) and NMS leaves a handful of whole-image proposals, and the box head's huge class
logits make most scores exactly 0. The RPN delta conv and the box predictor (class scores, box
deltas) are therefore zeroed: the proposals are the anchors, POST_NMS_TOPK_TEST proposals reach the
box head as with trained weights, every class score is 1/(K+1) > 0 and the mask head gets exactly
k boxes. The zeroed layers cost the same as trained ones. Then the head runs at the config's own
settings (level from MODEL.ROI_MASK_PROP_HEAD.IN_FEATURE, in_channels = FPN.OUT_CHANNELS,
CONV_DIM, ROI_SIZE, ROI_MARGIN, KERNEL_SIZE, NUM_RES_BLOCKS) for every (instance count, T) and at
alternative settings ((the config's level, p3, p4) × D 32/64 × full frame/ROI 8/16/24) at T = 6
with 10 instances. The
table gives
head / Mask R-CNN (forward with the same number of detections) and PASS/FAIL against the
goal (at T = 6 and ≤ 10 instances the clip's propagation costs < 0.5 frame forward).

Use one thread (the default) on a shared machine: with 2 threads on 2 busy cores the timings are
several times slower and meaningless. The load average is recorded at the start and the end.

Usage::

    python tools/bench_prop_head.py                       # head-only grid, markdown table
    python tools/bench_prop_head.py --strides 8 --dims 64 --inst 1 10 --T 6 --roi 0 24
    python tools/bench_prop_head.py --configs tiny r50 --out benchmarks/prop_head_cpu.md
    python tools/bench_prop_head.py --config-file my.yaml --opts MODEL.ROI_MASK_PROP_HEAD.ROI_SIZE 8
"""
import argparse
import datetime
import json
import os
import resource
import shlex
import subprocess
import sys
import time

import torch

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, REPO)

from bench_common import cpu_model  # noqa: E402

from maskprop_d2.modeling.propagation import MaskPropagationHead  # noqa: E402

IMAGE_SIZE = (360, 640)
SIZE_DIVISIBILITY = 32
FPN_CHANNELS = 256
CONFIG_ALIASES = {
    "tiny": "configs/synthetic/maskprop_tiny.yaml",
    "r50": "configs/YouTubeVIS-2019/maskprop_R50_FPN.yaml",
}
GOAL_RATIO = 0.5  # clip propagation < half a Mask R-CNN frame forward ...
GOAL_T = 6  # ... at T = 6 ...
GOAL_MAX_INST = 10  # ... and <= 10 instances


def feature_size(stride, image_size=IMAGE_SIZE, size_divisibility=SIZE_DIVISIBILITY):
    """(H', W') of a feature map of ``stride`` for an image padded to ``size_divisibility``."""
    h, w = [-(-s // size_divisibility) * size_divisibility for s in image_size]
    return -(-h // stride), -(-w // stride)


def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _level(stride):
    return "p{}".format(stride.bit_length() - 1) if stride & (stride - 1) == 0 else str(stride)


def _timed(fn, repeats, budget_s):
    """One warm-up call, then up to ``repeats`` timed calls (fewer, at least one, once the timed
    calls exceed ``budget_s`` seconds). Returns (sorted times in s, last result)."""
    out = fn()
    times = []
    while len(times) < max(1, repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget_s:
            break
    return sorted(times), out


def bench_head(level_stride=8, conv_dim=64, n_inst=10, T=6, roi_size=0, repeats=3,
               roi_margin=4.0, inst_size_px=96, in_channels=FPN_CHANNELS, threads=1, seed=0,
               kernel_size=3, num_res_blocks=1, include_center=True, budget_s=15.0,
               image_size=IMAGE_SIZE):
    """Time the head on one clip's worth of work; see the module docstring.

    Returns:
        dict with the setting, ``feat`` (H'×W'), ``rows``, ``ms`` (median over the timed runs
        after one warm-up), ``ms_min``, ``runs``, and ``peak_mib`` (max-RSS growth in this
        process; meaningful when this is the first bench run in the process).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    h, w = feature_size(level_stride, tuple(image_size))
    head = MaskPropagationHead(in_channels=in_channels, conv_dim=conv_dim, roi_size=roi_size,
                               roi_margin=roi_margin, kernel_size=kernel_size,
                               num_res_blocks=num_res_blocks).eval()
    with torch.no_grad():  # non-trivial motion so the deformable conv does real sampling
        head.offset_conv.weight.normal_(std=0.01)
        head.offset_conv.bias.normal_(std=1.0)
    nf = 2 * T + 1 if include_center else 2 * T  # target frames of the clip
    n = n_inst * nf
    new_frame = torch.randn(1, in_channels, h, w)
    window = torch.relu(torch.randn(2 * T + 1, conv_dim, h, w))  # cached reduced features
    dst = torch.arange(2 * T + 1) if include_center else torch.cat(
        [torch.arange(T), torch.arange(T + 1, 2 * T + 1)])
    side = max(1, round(inst_size_px / level_stride))
    g = torch.Generator().manual_seed(seed)
    inst = torch.zeros(n_inst, h, w)
    for i in range(n_inst):
        y0 = int(torch.randint(0, max(1, h - side), (1,), generator=g))
        x0 = int(torch.randint(0, max(1, w - side), (1,), generator=g))
        inst[i, y0:y0 + side, x0:x0 + side] = 1.0
    masks = inst.repeat(nf, 1, 1)  # row = (frame, instance), as MaskPropTracker._process_clip
    pair_index = torch.arange(nf).repeat_interleave(n_inst)

    def run():
        head.reduce(new_frame)  # the one new frame per step (its result would join the window)
        f_dst = window[dst]
        f_src = window[T][None].expand_as(f_dst)
        return head(f_src, f_dst, masks, pair_index)

    base = _maxrss_mib()
    with torch.no_grad():
        times, out = _timed(run, repeats, budget_s)
    assert out.shape == (n, h, w)
    return {
        "stride": level_stride, "level": _level(level_stride), "in_channels": in_channels,
        "conv_dim": conv_dim, "n_inst": n_inst, "T": T, "roi_size": roi_size,
        "roi_margin": roi_margin, "feat": "{}x{}".format(h, w), "rows": n,
        "ms": 1000 * times[len(times) // 2], "ms_min": 1000 * times[0], "runs": len(times),
        "peak_mib": _maxrss_mib() - base, "threads": threads,
    }


# ---------------------------------------------------------------------------- the whole model
def _load_cfg(config_file, opts=()):
    from detectron2.config import get_cfg

    from maskprop_d2 import add_maskprop_config

    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""  # random init; the model-zoo weights cannot be downloaded here
    return cfg


def head_settings(cfg):
    """bench_head keyword arguments for the config's own propagation head."""
    c = cfg.MODEL.ROI_MASK_PROP_HEAD
    name = c.IN_FEATURE
    if not (name.startswith("p") and name[1:].isdigit()):
        raise ValueError("IN_FEATURE {!r} is not an FPN level pN".format(name))
    return dict(level_stride=2 ** int(name[1:]), in_channels=cfg.MODEL.FPN.OUT_CHANNELS,
                conv_dim=c.CONV_DIM, roi_size=c.ROI_SIZE, roi_margin=float(c.ROI_MARGIN),
                kernel_size=c.KERNEL_SIZE, num_res_blocks=c.NUM_RES_BLOCKS)


def bench_model(config_file, opts=(), dets=(1, 5, 10, 20), repeats=5, threads=1, seed=0,
                budget_s=30.0, image_size=IMAGE_SIZE):
    """Per-frame Mask R-CNN cost of a config on one frame (see the module docstring).

    Returns:
        dict with ``backbone_ms``/``backbone_min_ms``/``backbone_peak_mib``, ``proposals``, and
        ``forward``: {k: {"ms", "ms_min", "runs", "dets", "peak_mib"}} (peak = max-RSS growth so
        far; the k run in increasing order, the largest last).
    """
    from detectron2.modeling import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = _load_cfg(config_file, opts)
    model = build_model(cfg).eval()
    predictor = model.roi_heads.box_predictor
    with torch.no_grad():  # proposals = anchors, boxes = proposals, uniform class scores
        for layer in (model.proposal_generator.rpn_head.anchor_deltas, predictor.cls_score,
                      predictor.bbox_pred):
            layer.weight.zero_()
            layer.bias.zero_()
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3,) + tuple(image_size), dtype=torch.uint8, generator=g)
    inputs = [{"image": image, "height": image_size[0], "width": image_size[1]}]
    res = {"config": config_file, "threads": threads, "num_params_m":
           sum(p.numel() for p in model.parameters()) / 1e6, "forward": {}}
    base = _maxrss_mib()
    with torch.no_grad():
        def backbone():
            return model.backbone(model.preprocess_image(inputs).tensor)

        times, feats = _timed(backbone, repeats, budget_s)
        res.update(backbone_ms=1000 * times[len(times) // 2], backbone_min_ms=1000 * times[0],
                   backbone_runs=len(times), backbone_peak_mib=_maxrss_mib() - base,
                   feature_shapes={k: list(v.shape[-2:]) for k, v in feats.items()})
        images = model.preprocess_image(inputs)
        res["proposals"] = len(model.proposal_generator(images, feats, None)[0][0])
        predictor.test_score_thresh = 0.0
        for k in sorted(dets):
            predictor.test_topk_per_image = k
            times, out = _timed(lambda: model(inputs), repeats, budget_s)
            res["forward"][k] = {"ms": 1000 * times[len(times) // 2], "ms_min": 1000 * times[0],
                                 "runs": len(times), "dets": len(out[0]["instances"]),
                                 "peak_mib": _maxrss_mib() - base}
    return res


# ---------------------------------------------------------------------------- CLI helpers
def _run_isolated(kind, kwargs, timeout, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--one", json.dumps([kind, kwargs])]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _try(kind, kwargs, timeout, threads):
    try:
        return _run_isolated(kind, kwargs, timeout, threads)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        sys.stderr.write("{} {} failed: {}\n".format(kind, kwargs, e))
        return None


def _roi(r):
    return "ROI {}".format(r) if r else "full"


class _Report:
    """Prints markdown as it goes and keeps it for ``--out``."""

    def __init__(self):
        self.lines = []

    def __call__(self, line=""):
        print(line, flush=True)
        self.lines.append(line)


def _goal_cell(T, n_inst, ratio):
    if T != GOAL_T or n_inst > GOAL_MAX_INST:
        return "({})".format("<0.5" if ratio < GOAL_RATIO else "≥0.5")
    return "**PASS**" if ratio < GOAL_RATIO else "**FAIL**"


def compare(args, out):
    configs = [CONFIG_ALIASES.get(c, c) for c in (args.configs or [])] + (args.config_file or [])
    common = dict(threads=args.threads, repeats=args.repeats, image_size=args.image_size,
                  inst_size_px=args.inst_px, include_center=not args.exclude_center)
    summary = []
    for path in configs:
        cfg = _load_cfg(os.path.join(REPO, path) if not os.path.isabs(path) else path, args.opts)
        own = head_settings(cfg)
        out("## `{}`{}".format(path, " with `{}`".format(" ".join(args.opts)) if args.opts else ""))
        out()
        out("ResNet-{} FPN ({} ch), head: {} (stride {}), C={} → D={}, {}, margin {:g}, "
            "k={}, {} res block(s).".format(
                cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.FPN.OUT_CHANNELS, _level(own["level_stride"]),
                own["level_stride"], own["in_channels"], own["conv_dim"], _roi(own["roi_size"]),
                own["roi_margin"], own["kernel_size"], own["num_res_blocks"]))
        out()
        m = _try("model", dict(config_file=path, opts=list(args.opts), dets=args.inst,
                               repeats=args.model_repeats, threads=args.threads,
                               image_size=args.image_size),
                 args.timeout, args.threads)
        if m is None:
            out("Mask R-CNN forward failed (see stderr).")
            out()
            continue
        fwd = {int(k): v for k, v in m["forward"].items()}
        out("Mask R-CNN per-frame cost ({}×{} frame, p2 {}; {} proposals reach the box head; "
            "{:.1f} M parameters):".format(
                args.image_size[0], args.image_size[1],
                "×".join(map(str, m["feature_shapes"]["p2"])), m["proposals"],
                m["num_params_m"]))
        out()
        out("| part | detections | median ms | min ms | runs | peak RSS growth MiB |")
        out("|---|---|---|---|---|---|")
        out("| backbone (+FPN) only | – | {:.0f} | {:.0f} | {} | {:.0f} |".format(
            m["backbone_ms"], m["backbone_min_ms"], m["backbone_runs"], m["backbone_peak_mib"]))
        for k in sorted(fwd):
            v = fwd[k]
            out("| full forward | {} (asked {}) | {:.0f} | {:.0f} | {} | {:.0f} |".format(
                v["dets"], k, v["ms"], v["ms_min"], v["runs"], v["peak_mib"]))
        out()
        out("Propagation head at the config's settings (per video frame = one clip; ratio = head "
            "/ full forward with the same number of detections; goal column: PASS/FAIL where the "
            "goal applies, T = {} and ≤ {} instances, else (ratio vs 0.5)):".format(
                GOAL_T, GOAL_MAX_INST))
        out()
        out("| T | inst | rows | head median ms | min ms | runs | head peak MiB | Mask R-CNN ms "
            "| head / Mask R-CNN | head / backbone | goal |")
        out("|---|---|---|---|---|---|---|---|---|---|---|")
        verdict = []
        for T in args.T:
            for n_inst in args.inst:
                r = _try("head", dict(own, n_inst=n_inst, T=T, **common), args.timeout,
                         args.threads)
                if r is None:
                    out("| {} | {} | – | failed | | | | | | | |".format(T, n_inst))
                    continue
                ratio = r["ms"] / fwd[n_inst]["ms"]
                if T == GOAL_T and n_inst <= GOAL_MAX_INST:
                    verdict.append(ratio < GOAL_RATIO)
                out("| {} | {} | {} | {:.1f} | {:.1f} | {} | {:.0f} | {:.0f} | {:.3f} | {:.3f} "
                    "| {} |".format(T, n_inst, r["rows"], r["ms"], r["ms_min"], r["runs"],
                                    r["peak_mib"], fwd[n_inst]["ms"], ratio,
                                    r["ms"] / m["backbone_ms"], _goal_cell(T, n_inst, ratio)))
        ok = ("PASS" if all(verdict) else "FAIL") if verdict else "not measured"
        summary.append((path, own, ok))
        out()
        out("Goal at the config's settings (T = {}, ≤ {} instances): **{}**".format(
            GOAL_T, GOAL_MAX_INST, ok))
        out()
        if args.alt_inst not in fwd:
            continue
        ref = fwd[args.alt_inst]["ms"]
        out("Alternative head settings, T = {}, {} instances (Mask R-CNN forward {:.0f} ms; "
            "C = {}, margin {:g}, k = {}, {} res block(s) as the config):".format(
                args.alt_T, args.alt_inst, ref, own["in_channels"], own["roi_margin"],
                own["kernel_size"], own["num_res_blocks"]))
        out()
        out("| level | feat | D | mode | rows | head median ms | min ms | runs | head peak MiB "
            "| head / Mask R-CNN | goal |")
        out("|---|---|---|---|---|---|---|---|---|---|---|")
        for stride in sorted(set(args.alt_strides) | {own["level_stride"]}):
            for dim in args.alt_dims:
                for roi in args.alt_roi:
                    kw = dict(own, level_stride=stride, conv_dim=dim, roi_size=roi,
                              n_inst=args.alt_inst, T=args.alt_T, **common)
                    mark = " (config)" if (stride, dim, roi) == (
                        own["level_stride"], own["conv_dim"], own["roi_size"]) else ""
                    r = _try("head", kw, args.timeout, args.threads)
                    if r is None:
                        out("| {} | | {} | {} | | failed | | | | | |".format(
                            _level(stride), dim, _roi(roi)))
                        continue
                    ratio = r["ms"] / ref
                    out("| {} | {} | {} | {}{} | {} | {:.1f} | {:.1f} | {} | {:.0f} | {:.3f} | {} |"
                        .format(_level(stride), r["feat"], dim, _roi(roi), mark, r["rows"],
                                r["ms"], r["ms_min"], r["runs"], r["peak_mib"], ratio,
                                _goal_cell(args.alt_T, args.alt_inst, ratio)))
        out()
    if summary:
        out("## Summary")
        out()
        for path, own, ok in summary:
            out("* `{}` ({}, D={}, {}): goal **{}**".format(
                path, _level(own["level_stride"]), own["conv_dim"], _roi(own["roi_size"]), ok))
        out()


def head_grid(args, out):
    out("| level | D | roi | T | inst | rows | feat | ms/frame | min ms | runs | peak MiB |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for stride in args.strides:
        for dim in args.dims:
            for roi in args.roi:
                for T in args.T:
                    for n_inst in args.inst:
                        kw = dict(level_stride=stride, conv_dim=dim, n_inst=n_inst, T=T,
                                  roi_size=roi, repeats=args.repeats, roi_margin=args.margin,
                                  threads=args.threads, include_center=not args.exclude_center,
                                  image_size=args.image_size, inst_size_px=args.inst_px)
                        r = _try("head", kw, args.timeout, args.threads)
                        if r is None:
                            out("| {} | {} | {} | {} | {} | – | – | failed | | | |".format(
                                _level(stride), dim, roi or "full", T, n_inst))
                            continue
                        out("| {} | {} | {} | {} | {} | {} | {} | {:.1f} | {:.1f} | {} | {:.0f} |"
                            .format(_level(stride), dim, roi or "full", T, n_inst, r["rows"],
                                    r["feat"], r["ms"], r["ms_min"], r["runs"], r["peak_mib"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", nargs="+", metavar="NAME|YAML",
                    help="comparison mode: {} or config paths".format(
                        ", ".join("{}={}".format(k, v) for k, v in CONFIG_ALIASES.items())))
    ap.add_argument("--config-file", nargs="+", help="comparison mode: config path(s)")
    ap.add_argument("--opts", nargs="+", default=[], help="config overrides (KEY VALUE ...)")
    ap.add_argument("--strides", type=int, nargs="+", default=[8, 16], help="head-only grid")
    ap.add_argument("--dims", type=int, nargs="+", default=[32, 64], help="head-only grid")
    ap.add_argument("--roi", type=int, nargs="+", default=[0, 24], help="head-only grid")
    ap.add_argument("--margin", type=float, default=4.0, help="head-only grid: ROI margin, feat px")
    ap.add_argument("--inst", type=int, nargs="+", default=[1, 5, 10, 20])
    ap.add_argument("--T", type=int, nargs="+", default=[1, 3, 6])
    ap.add_argument("--image-size", type=int, nargs=2, default=list(IMAGE_SIZE), metavar=("H", "W"))
    ap.add_argument("--inst-px", type=int, default=96, help="instance box side, input pixels")
    ap.add_argument("--alt-strides", type=int, nargs="+", default=[8, 16],
                    help="alternatives' levels (the config's own level is always added)")
    ap.add_argument("--alt-dims", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--alt-roi", type=int, nargs="+", default=[0, 8, 16, 24])
    ap.add_argument("--alt-T", type=int, default=GOAL_T)
    ap.add_argument("--alt-inst", type=int, default=GOAL_MAX_INST)
    ap.add_argument("--exclude-center", action="store_true",
                    help="propagate to the 2T neighbours only (inference also does the centre)")
    ap.add_argument("--repeats", type=int, default=7, help="max timed head runs (after warm-up)")
    ap.add_argument("--model-repeats", type=int, default=5, help="max timed model runs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per subprocess")
    ap.add_argument("--out", help="also write the markdown report here")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        spec = json.loads(args.one)
        kind, kw = spec if isinstance(spec, list) else ("head", spec)
        res = bench_head(**kw) if kind == "head" else bench_model(**kw)
        print(json.dumps(res))
        return

    import torchvision

    out = _Report()
    t0 = time.time()
    load0 = os.getloadavg()
    out("# Propagation head vs. Mask R-CNN forward (CPU)" if (args.configs or args.config_file)
        else "# Propagation head (CPU)")
    out()
    out("* command: `python {}`".format(" ".join(
        shlex.quote(a) for a in [os.path.relpath(os.path.abspath(__file__), os.getcwd())]
        + sys.argv[1:])))
    out("* date: {}".format(datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))
    out("* machine: {} logical CPUs (`nproc`), {}; torch {}, torchvision {}; "
        "{} thread(s)".format(os.cpu_count(), cpu_model(), torch.__version__,
                              torchvision.__version__, args.threads))
    out("* load average at start (1/5/15 min): {:.2f} / {:.2f} / {:.2f}".format(*load0))
    hp, wp = feature_size(1, tuple(args.image_size))
    out("* frame {}×{} (padded to {}×{}); head: instances ≈{}×{} px, clip = {} frames".format(
        args.image_size[0], args.image_size[1], hp, wp, args.inst_px, args.inst_px,
        "2T" if args.exclude_center else "2T+1 (centre included, as in inference)"))
    out("* times: median (and min) of the timed runs after one warm-up, each setting in a fresh "
        "process; peak = growth of max RSS over the process's baseline")
    out()
    if args.configs or args.config_file:
        compare(args, out)
    else:
        head_grid(args, out)
        out()
    load1 = os.getloadavg()
    out("* load average at end (1/5/15 min): {:.2f} / {:.2f} / {:.2f}; wall time {:.0f} s".format(
        *load1, time.time() - t0))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(out.lines) + "\n")


if __name__ == "__main__":
    main()
