#!/usr/bin/env python
"""CPU cost of the mask propagation head per video frame against the per-frame Mask R-CNN forward
of the same config (360×640 frame, random weights, one thread, no grad).

One clip = a streaming step: reduce the new frame's feature, propagate the centre frame's k
instances (≈96×96 px boxes) to the 2T+1 frames in one head call. Forward: ``model([frame])`` with
exactly k detections (``fixed_detections``). Goal: < 0.5 forward at T = 6, ≤ 10 instances. Rows:
the config's head per k, then ``--alt`` settings (level:D:ROI; ROI 0 = full frame) at T = 6 with
10 instances. Median CPU ms (``bench_common.timed``).

    python tools/bench_prop_head.py --configs tiny r50 --out benchmarks/prop_head_cpu.md
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402

H, W = 360, 640


def head_ms(level, in_channels, conv_dim, roi_size, n_inst, T, cfg_head, repeats):
    """Median CPU ms of one clip's propagation."""
    import torch

    from maskprop_d2.modeling.propagation import MaskPropagationHead

    torch.manual_seed(0)
    s = 2**level
    h, w = -(-(-(-H // 32) * 32) // s), -(-(-(-W // 32) * 32) // s)  # padded to 32, then /s
    c = cfg_head
    head = MaskPropagationHead(in_channels=in_channels, conv_dim=conv_dim, roi_size=roi_size,
                               roi_margin=float(c.ROI_MARGIN), kernel_size=c.KERNEL_SIZE,
                               num_res_blocks=c.NUM_RES_BLOCKS).eval()  # fmt: skip
    with torch.no_grad():  # non-trivial motion, so the deformable conv samples for real
        head.offset_conv.weight.normal_(std=0.01)
        head.offset_conv.bias.normal_(std=1.0)
    nf, side = 2 * T + 1, max(1, round(96 / s))
    new_frame = torch.randn(1, in_channels, h, w)
    window = torch.relu(torch.randn(nf, conv_dim, h, w))  # the cached reduced features
    inst = torch.zeros(n_inst, h, w)
    for i in range(n_inst):
        y, x = (int(torch.randint(0, max(1, d - side), (1,))) for d in (h, w))
        inst[i, y : y + side, x : x + side] = 1.0
    masks, pairs = inst.repeat(nf, 1, 1), torch.arange(nf).repeat_interleave(n_inst)

    def clip():
        head.reduce(new_frame)
        return head(window[T][None].expand_as(window), window, masks, pairs)

    with torch.no_grad():
        return bc.timed(clip, repeats, budget_s=20)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "r50"])
    p.add_argument("--inst", nargs="+", type=int, default=[1, 5, 10])
    p.add_argument("--T", type=int, default=6)
    p.add_argument("--alt", nargs="*", default=["3:32:0", "3:32:8", "3:32:16"],
                   help="level:D:ROI head settings at T = 6, 10 instances")  # fmt: skip
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="")
    a = p.parse_args()
    bc.set_threads(1)
    import torch
    from detectron2.modeling import build_model

    rep = bc.Report("Propagation head vs. the Mask R-CNN forward (CPU)")
    rep.add("{}×{} frames, random weights; head instances ≈96×96 px; one clip = 2T+1 target "
            "frames, the centre included. Median CPU ms of up to {} runs after a warm-up.".format(
                H, W, a.repeats))  # fmt: skip
    for name in a.configs:
        cfg = bc.load_cfg(name, ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0])
        torch.manual_seed(0)
        model = bc.fixed_detections(build_model(cfg).eval())
        frame = {"image": torch.randint(0, 256, (3, H, W), dtype=torch.uint8), "height": H,
                 "width": W}  # fmt: skip
        fwd = {}
        for k in a.inst:
            model.roi_heads.box_predictor.test_topk_per_image = k
            with torch.no_grad():
                fwd[k], out = bc.timed(lambda m=model, f=frame: m([f]), a.repeats, budget_s=30)
            assert len(out[0]["instances"]) == k, (len(out[0]["instances"]), k)
        ch, own = cfg.MODEL.ROI_MASK_PROP_HEAD, cfg.MODEL.FPN.OUT_CHANNELS
        mine = (int(ch.IN_FEATURE[1:]), ch.CONV_DIM, ch.ROI_SIZE)
        runs = [(mine, k, a.T) for k in a.inst]
        runs += [(tuple(int(x) for x in alt.split(":")), 10 if 10 in fwd else max(fwd), 6)
                 for alt in a.alt]  # fmt: skip
        rows = []
        for (lv, d, roi), k, T in runs:
            ms = head_ms(lv, own, d, roi, k, T, ch, a.repeats)
            goal = ("**pass**" if ms < 0.5 * fwd[k] else "**fail**") if T == 6 and k <= 10 else "–"
            rows.append(["{}p{}, D {}, {}".format("config's: " if (lv, d, roi) == mine else "", lv,
                                                  d, "ROI {}".format(roi) if roi else "full frame"),
                         T, k, "{:.0f}".format(fwd[k]), "{:.0f}".format(ms),
                         "{:.2f}".format(ms / fwd[k]), goal])  # fmt: skip
            print(rows[-1], flush=True)
        rep.table(["head", "T", "instances", "Mask R-CNN forward ms", "head ms", "head / forward",
                   "goal (< 0.5 at T = 6, ≤ 10 instances)"], rows,
                  "`{}` (ResNet-{}, FPN {} channels):".format(
                      bc.CONFIGS.get(name, name), cfg.MODEL.RESNETS.DEPTH, own))  # fmt: skip
    rep.save(a.out)


if __name__ == "__main__":
    main()
