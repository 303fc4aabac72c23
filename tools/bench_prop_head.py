#!/usr/bin/env python
"""Time and peak memory of the mask propagation head alone (CPU, no grad).

One "clip" is what streaming inference does per output frame: reduce the new frame's feature once
(the other frames' reduced features are cached), compute offsets for the 2T pairs (t, t±δ), and
propagate ``n_inst`` centre-frame instances to the 2T neighbours (``rows = n_inst * 2T`` in one
batched head call). At steady state that is the propagation cost per video frame.

Feature sizes follow detectron2's padding of a 360×640 frame to a multiple of 32 (384×640):
p2 (stride 4) 96×160, p3 (stride 8) 48×80, p4 (stride 16) 24×40. Instances are filled boxes of
about 96×96 input pixels. Peak memory is the growth of the process's max RSS
(``resource.getrusage``) over a baseline taken after the inputs are built; the CLI runs every
setting in a fresh subprocess so each high-water mark is that setting's own.

Usage::

    python tools/bench_prop_head.py                       # default grid, markdown table
    python tools/bench_prop_head.py --strides 8 --dims 64 --inst 1 10 --T 6 --roi 0 24
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from maskprop_d2.modeling.propagation import MaskPropagationHead  # noqa: E402

IMAGE_SIZE = (360, 640)
SIZE_DIVISIBILITY = 32
FPN_CHANNELS = 256


def feature_size(stride, image_size=IMAGE_SIZE, size_divisibility=SIZE_DIVISIBILITY):
    """(H', W') of a feature map of ``stride`` for an image padded to ``size_divisibility``."""
    h, w = [-(-s // size_divisibility) * size_divisibility for s in image_size]
    return -(-h // stride), -(-w // stride)


def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def bench_head(level_stride=8, conv_dim=64, n_inst=10, T=6, roi_size=0, repeats=3,
               roi_margin=4.0, inst_size_px=96, in_channels=FPN_CHANNELS, threads=2, seed=0):
    """Time the head on one clip's worth of work; see the module docstring.

    Returns:
        dict with the setting, ``feat`` (H'×W'), ``rows``, ``ms`` (median over ``repeats`` after
        one warm-up), ``ms_min``, and ``peak_mib`` (max-RSS growth in this process; meaningful
        when this is the first bench run in the process).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    h, w = feature_size(level_stride)
    head = MaskPropagationHead(in_channels=in_channels, conv_dim=conv_dim, roi_size=roi_size,
                               roi_margin=roi_margin).eval()
    with torch.no_grad():  # non-trivial motion so the deformable conv does real sampling
        head.offset_conv.weight.normal_(std=0.01)
        head.offset_conv.bias.normal_(std=1.0)
    p = 2 * T
    n = n_inst * p
    new_frame = torch.randn(1, in_channels, h, w)
    cached = torch.relu(torch.randn(p + 1, conv_dim, h, w))  # reduced features of the window
    side = max(1, round(inst_size_px / level_stride))
    g = torch.Generator().manual_seed(seed)
    inst = torch.zeros(n_inst, h, w)
    for i in range(n_inst):
        y0 = int(torch.randint(0, max(1, h - side), (1,), generator=g))
        x0 = int(torch.randint(0, max(1, w - side), (1,), generator=g))
        inst[i, y0:y0 + side, x0:x0 + side] = 1.0
    masks = inst.repeat(p, 1, 1)  # row = (delta, instance)
    pair_index = torch.arange(p).repeat_interleave(n_inst)
    dst = torch.arange(1, p + 1)

    def run():
        red = head.reduce(new_frame)  # the one new frame per step
        f_src = red.expand(p, -1, -1, -1)
        f_dst = cached[dst]
        return head(f_src, f_dst, masks, pair_index)

    base = _maxrss_mib()
    times = []
    with torch.no_grad():
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            out = run()
            dt = time.perf_counter() - t0
            if r > 0:
                times.append(dt)
    assert out.shape == (n, h, w)
    times.sort()
    return {
        "stride": level_stride, "conv_dim": conv_dim, "n_inst": n_inst, "T": T,
        "roi_size": roi_size, "feat": "{}x{}".format(h, w), "rows": n,
        "ms": 1000 * times[len(times) // 2], "ms_min": 1000 * times[0],
        "peak_mib": _maxrss_mib() - base, "threads": threads,
    }


def _run_isolated(kwargs, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--one", json.dumps(kwargs)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--strides", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--dims", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--inst", type=int, nargs="+", default=[1, 5, 10, 20])
    ap.add_argument("--T", type=int, nargs="+", default=[1, 3, 6])
    ap.add_argument("--roi", type=int, nargs="+", default=[0, 24])
    ap.add_argument("--margin", type=float, default=4.0, help="ROI motion margin, feature px")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300, help="seconds per setting")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(bench_head(**json.loads(args.one))))
        return
    print("| level | D | roi | T | inst | rows | feat | ms/frame | min ms | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for stride in args.strides:
        for dim in args.dims:
            for roi in args.roi:
                for T in args.T:
                    for n_inst in args.inst:
                        kw = dict(level_stride=stride, conv_dim=dim, n_inst=n_inst, T=T,
                                  roi_size=roi, repeats=args.repeats, roi_margin=args.margin,
                                  threads=args.threads)
                        try:
                            r = _run_isolated(kw, args.timeout)
                        except (RuntimeError, subprocess.TimeoutExpired) as e:
                            print("| p{} | {} | {} | {} | {} | – | – | failed: {} | | |".format(
                                {4: 2, 8: 3, 16: 4, 32: 5}.get(stride, stride), dim, roi, T,
                                n_inst, type(e).__name__))
                            continue
                        print("| p{} | {} | {} | {} | {} | {} | {} | {:.0f} | {:.0f} | {:.0f} |"
                              .format({4: 2, 8: 3, 16: 4, 32: 5}.get(stride, stride), dim,
                                      roi or "full", T, n_inst, r["rows"], r["feat"], r["ms"],
                                      r["ms_min"], r["peak_mib"]), flush=True)


if __name__ == "__main__":
    main()
