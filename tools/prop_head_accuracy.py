#!/usr/bin/env python
"""Propagation accuracy of the mask propagation head in ROI mode vs. full-frame mode, with the
SAME trained weights ("show the accuracy it keeps").

Protocol (deterministic for a given ``--seed``):

* Clips come from ``ClipDatasetMapper(cfg, is_train=True)`` on the (annotated) ``--dataset`` split
  with ``INPUT.RANDOM_FLIP "none"``, colour jitter off, ``INPUT.CLIP.HALF_LENGTH = T``
  (``--half-length``) and ``INPUT.CLIP.NUM_SAMPLED_FRAMES = K`` (``--num-sampled``, default 2T,
  i.e. every frame of the window [t-T, t+T] clamped to the video). Clip ``i`` uses video
  ``i mod #videos``; its centre frame is drawn by the mapper from numpy's RNG, seeded once.
* The model (``build_model`` + ``DetectionCheckpointer.load(--weights)``) is in eval mode; the
  backbone features of a clip's frames are computed once, and the head's 1×1 reduction once per
  frame (it does not depend on the spatial mode).
* Rows are those of ``MaskPropROIHeads.propagation_losses``: every centre-frame GT instance
  (source mask = its GT mask area-downsampled to the propagation level) propagated to every frame
  of the clip, the centre frame itself included (δ = 0), supervised by the same track's GT mask
  there (empty where absent). For each setting (``roi_size`` S, ``roi_margin`` m; S = 0 is full
  frame) the head attributes ``roi_size``/``roi_margin`` are set in place and the same rows are
  propagated. The per-row loss reproduces ``mask_prop_loss`` (checked against
  ``propagation_losses`` on every clip).
* Metrics, all at feature resolution (the propagation level's grid):
  - ``loss``: mean per-row ``loss_mask_prop`` (1 − soft IoU; empty-GT rows ``q / (q + 1)``),
    over all rows (the training definition, δ = 0 included) and over δ ≠ 0 rows;
  - ``sIoU``: mean soft IoU of ``sigmoid(logits)`` vs. the soft GT on δ ≠ 0 rows with a non-empty
    GT;
  - ``bIoU@0.5``: mean IoU of ``sigmoid(logits) >= 0.5`` vs. ``GT >= 0.5`` on δ ≠ 0 rows whose
    binarised GT is non-empty (GT cells are area fractions, so very small objects can vanish);
  - ``agree``: mean IoU between the setting's binarised prediction and the full-frame one (same
    rows as sIoU), and ``mean abs Δp``: mean |p − p_full| over all pixels of all rows — how
    closely ROI mode reproduces full frame;
  - ``rows resampled``: share of rows whose window is not exactly S×S (box + 2m > S, or the
    frame smaller than S): those crops are resampled to S×S, so the head sees another scale;
  - ``GT out``: mean fraction of the GT mass that lies outside the row's ROI window (ROI modes;
    the window truncation alone costs at least this much);
  - ``Δ sIoU``: paired difference of sIoU vs. full frame, mean ± standard error over clips.
* Baseline "identity": the source (centre) mask copied unchanged to every frame (no propagation),
  scored the same way; its sIoU tells how much the head adds over doing nothing. "oracle": the
  (soft, area-fraction) GT itself as the prediction — NOT a ceiling: with fractional GT cells a
  sharper prediction scores a higher soft IoU than the GT does, sIoU(GT, GT) < 1.

Usage::

    python tools/prop_head_accuracy.py --config-file configs/synthetic/maskprop_tiny.yaml \\
        --weights /tmp/tiny_800/model_final.pth \\
        --opts MODEL.ROI_MASK_PROP_HEAD.IN_FEATURE p3 \\
        --num-clips 48 --half-length 3 --roi-sizes 0 8 16 24 --margins 2 4 8 \\
        --out benchmarks/prop_head_accuracy.md

Runs on CPU with one thread (``--threads``).
"""
import argparse
import datetime
import math
import os
import platform
import shlex
import sys
import time
from collections import defaultdict

import numpy as np
import torch

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", default="configs/synthetic/maskprop_tiny.yaml")
    p.add_argument("--weights", required=True, help="trained checkpoint (.pth)")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    p.add_argument("--dataset", default="synthetic_ytvis_val", help="registered annotated split")
    p.add_argument("--num-clips", type=int, default=48)
    p.add_argument("--half-length", type=int, default=3, help="T: window [t-T, t+T]")
    p.add_argument(
        "--num-sampled", type=int, default=None,
        help="K frames besides the centre (default 2T: the whole window)",
    )
    p.add_argument("--roi-sizes", type=int, nargs="+", default=[0, 8, 16, 24],
                   help="ROI sizes S to evaluate (0 = full frame, always added)")
    p.add_argument("--margins", type=float, nargs="+", default=None,
                   help="ROI margins (feature px) to evaluate with each S > 0 "
                        "(default: the config's ROI_MARGIN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default="", help="free text added under the title (e.g. checkpoint)")
    p.add_argument("--title", default="Propagation accuracy: ROI mode vs full frame")
    p.add_argument("--out", default="", help="write the markdown report here")
    p.add_argument("--append", action="store_true", help="append to --out instead of replacing")
    return p.parse_args(argv)


def setup_cfg(args):
    from detectron2.config import get_cfg

    from maskprop_d2 import add_maskprop_config

    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(list(args.opts))
    k = 2 * args.half_length if args.num_sampled is None else args.num_sampled
    cfg.merge_from_list([
        "MODEL.DEVICE", "cpu",
        "MODEL.WEIGHTS", args.weights,
        "INPUT.RANDOM_FLIP", "none",
        "INPUT.COLOR_JITTER.ENABLED", False,
        "INPUT.CROP.ENABLED", False,
        "INPUT.CLIP.HALF_LENGTH", args.half_length,
        "INPUT.CLIP.NUM_SAMPLED_FRAMES", k,
    ])
    cfg.freeze()
    return cfg


def row_metrics(prob, gt, empty_smooth=1.0):
    """Per-row loss (as mask_prop_loss), soft IoU, binary IoU@0.5 and its validity mask."""
    from maskprop_d2.utils.masks import soft_iou

    siou = soft_iou(prob, gt)
    gt_empty = gt.flatten(1).sum(1) <= 0
    mass = prob.flatten(1).sum(1)
    loss = torch.where(gt_empty, mass / (mass + empty_smooth), 1.0 - siou)
    pb, gb = prob >= 0.5, gt >= 0.5
    inter = (pb & gb).flatten(1).sum(1).float()
    union = (pb | gb).flatten(1).sum(1).float()
    bvalid = gb.flatten(1).any(1)
    biou = torch.where(bvalid, inter / union.clamp(min=1), torch.zeros_like(inter))
    return loss, siou, biou, bvalid


def build_clip_rows(roi_heads, features, clip):
    """Rows of propagation_losses for one clip (all its frames in one batch)."""
    from maskprop_d2.modeling.mask_ops import masks_to_feature_resolution

    stride = roi_heads.mask_prop_stride
    feat_hw = features[roi_heads.mask_prop_in_feature].shape[-2:]
    c = clip["center"]
    center_inst = clip["instances"][c]
    n = len(center_inst)
    src = masks_to_feature_resolution(center_inst.gt_masks.tensor, feat_hw, stride)
    src_pos, dst_pos, masks, tgts, pair_index, delta = [], [], [], [], [], []
    for pos, inst in enumerate(clip["instances"]):
        pair_index.append(torch.full((n,), len(src_pos), dtype=torch.long))
        src_pos.append(c)
        dst_pos.append(pos)
        masks.append(src)
        tgts.append(masks_to_feature_resolution(inst.gt_masks.tensor, feat_hw, stride))
        delta.append(torch.full((n,), clip["frame_ids"][pos] - clip["frame_ids"][c]))
    return (
        torch.as_tensor(src_pos), torch.as_tensor(dst_pos), torch.cat(masks), torch.cat(tgts),
        torch.cat(pair_index), torch.cat(delta),
    )


def fmt(x, nd=3):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else "{:.{}f}".format(x, nd)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()
    cpu_start = time.process_time()

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import build_model

    import maskprop_d2  # noqa: F401  (registers datasets and the model)
    from maskprop_d2.data import ClipDatasetMapper
    from maskprop_d2.modeling.prop_loss import mask_prop_loss
    from maskprop_d2.modeling.propagation import BOX_MASK_THRESH
    from maskprop_d2.modeling.roi_heads import ClipTargets
    from maskprop_d2.utils.masks import boxes_from_masks as mask_boxes

    cfg = setup_cfg(args)
    model = build_model(cfg)
    DetectionCheckpointer(model).load(args.weights)
    model.eval()
    heads = model.roi_heads
    head = heads.mask_prop_head
    cfg_roi = (head.roi_size, head.roi_margin)

    margins = args.margins if args.margins else [float(cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_MARGIN)]
    settings = [(0, None)]
    for s in args.roi_sizes:
        if s > 0:
            settings += [(s, float(m)) for m in margins]

    def name(st):
        return "full frame" if st[0] == 0 else "ROI S={} m={:g}".format(st[0], st[1])

    records = DatasetCatalog.get(args.dataset)
    mapper = ClipDatasetMapper(cfg, is_train=True)

    # per setting: lists of per-row tensors; per clip: sIoU sums for the paired difference
    rows = defaultdict(lambda: defaultdict(list))
    clip_siou = defaultdict(list)  # setting -> per-clip mean sIoU (nonempty δ≠0 rows)
    n_clips_used = 0
    n_frames = 0
    feat_hw = None
    max_check = 0.0
    with torch.no_grad():
        for i in range(args.num_clips):
            clip = mapper(records[i % len(records)])
            n = len(clip["instances"][clip["center"]])
            if n == 0:
                continue
            frames = [{"image": im} for im in clip["image"]]
            features = model.backbone(model.preprocess_image(frames).tensor)
            feat = features[heads.mask_prop_in_feature]
            feat_hw = tuple(feat.shape[-2:])
            reduced = head.reduce(feat)
            src_idx, dst_idx, masks, tgt, pair_index, delta = build_clip_rows(
                heads, features, clip
            )
            nonzero = delta != 0
            nonempty = tgt.flatten(1).sum(1) > 0
            sel = nonzero & nonempty
            n_clips_used += 1
            n_frames += len(frames)
            full_prob = None
            for st in settings + [("identity", None), ("oracle", None)]:
                if st[0] == "identity":
                    prob = masks
                elif st[0] == "oracle":
                    prob = tgt
                else:
                    head.roi_size = st[0]
                    if st[1] is not None:
                        head.roi_margin = st[1]
                    offsets = head.offsets(reduced[src_idx], reduced[dst_idx])
                    logits = head(
                        reduced[src_idx], reduced[dst_idx], masks, pair_index, offsets=offsets
                    )
                    prob = torch.sigmoid(logits.float())
                    # the per-row loss reproduces the model's loss on the same clip
                    ref = heads.propagation_losses(
                        features,
                        [ClipTargets(range(len(frames)), clip["center"], clip["instances"])],
                    )["loss_mask_prop"].item() / heads.mask_prop_loss_weight
                    mine = mask_prop_loss(logits, tgt).item()
                    max_check = max(max_check, abs(ref - mine))
                loss, siou, biou, bvalid = row_metrics(prob, tgt)
                r = rows[st]
                r["loss"].append(loss)
                r["siou"].append(siou)
                r["biou"].append(biou)
                r["bvalid"].append(bvalid)
                r["nonzero"].append(nonzero)
                r["nonempty"].append(nonempty)
                r["delta"].append(delta)
                if st[0] == 0:
                    full_prob = prob
                if isinstance(st[0], int):
                    pb, fb = prob >= 0.5, full_prob >= 0.5
                    u = (pb | fb).flatten(1).sum(1).float()
                    i_ = (pb & fb).flatten(1).sum(1).float()
                    r["agree"].append(torch.where(u > 0, i_ / u.clamp(min=1), torch.ones_like(u)))
                    r["dprob"].append((prob - full_prob).abs().flatten(1).mean(1))
                if isinstance(st[0], int) and st[0] > 0:
                    boxes = mask_boxes(masks, thresh=BOX_MASK_THRESH)
                    win = head.roi_windows(boxes, feat_hw).round().long()
                    h, w = feat_hw
                    ys = torch.arange(h)[None, :, None]
                    xs = torch.arange(w)[None, None, :]
                    inside = (
                        (ys >= win[:, 1, None, None]) & (ys < win[:, 3, None, None])
                        & (xs >= win[:, 0, None, None]) & (xs < win[:, 2, None, None])
                    )
                    tot = tgt.flatten(1).sum(1)
                    out = (tgt * (~inside)).flatten(1).sum(1) / tot.clamp(min=1e-9)
                    r["gt_out"].append(out)
                    r["win_w"].append((win[:, 2] - win[:, 0]).float())
                    r["win_h"].append((win[:, 3] - win[:, 1]).float())
                    r["resampled"].append(
                        ((win[:, 2] - win[:, 0]) != st[0]) | ((win[:, 3] - win[:, 1]) != st[0])
                    )
                clip_siou[st].append(siou[sel].mean().item() if sel.any() else float("nan"))
    head.roi_size, head.roi_margin = cfg_roi

    # ------------------------------------------------------------------ aggregate
    cat = {st: {k: torch.cat(v) for k, v in r.items()} for st, r in rows.items()}
    full = (0, None)
    base = cat[full]
    sel = base["nonzero"] & base["nonempty"]
    bsel = base["nonzero"] & base["bvalid"]
    n_rows = len(base["loss"])
    n_sel = int(sel.sum())
    n_bsel = int(bsel.sum())
    n_empty = int((base["nonzero"] & ~base["nonempty"]).sum())
    full_clip = np.array(clip_siou[full])

    def summary(st):
        c = cat[st]
        d = {
            "loss_all": c["loss"].mean().item(),
            "loss_nz": c["loss"][base["nonzero"]].mean().item(),
            "loss_empty": (
                c["loss"][base["nonzero"] & ~base["nonempty"]].mean().item() if n_empty else None
            ),
            "siou": c["siou"][sel].mean().item(),
            "biou": c["biou"][bsel].mean().item(),
            "agree": c["agree"][sel].mean().item() if "agree" in c else None,
            "dprob": c["dprob"].mean().item() if "dprob" in c else None,
            "resampled": c["resampled"].float().mean().item() if "resampled" in c else None,
            "gt_out": c["gt_out"][sel].mean().item() if "gt_out" in c else None,
            "win": (
                "{:.1f}×{:.1f}".format(c["win_w"].mean().item(), c["win_h"].mean().item())
                if "win_w" in c else "{}×{}".format(feat_hw[1], feat_hw[0])
            ),
        }
        diff = np.array(clip_siou[st]) - full_clip
        diff = diff[~np.isnan(diff)]
        d["dsiou"] = diff.mean() if len(diff) else float("nan")
        d["dsiou_se"] = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        return d

    summ = {st: summary(st) for st in list(rows)}
    fs = summ[full]

    def rel(a, b):
        return "{:+.1f}%".format(100.0 * (a - b) / b) if b else "–"

    lines = []
    if not args.append:
        lines += ["# {}".format(args.title), ""]
    else:
        lines += ["", "---", ""]
    cmd = "python tools/prop_head_accuracy.py " + " ".join(shlex.quote(a) for a in (
        argv if argv is not None else sys.argv[1:]))
    lines += [
        "## Run: `{}` on `{}` (**SYNTHETIC**)".format(os.path.basename(args.weights), args.dataset),
        "",
        "* Date: {}; host: {} ({}), torch {}, {} thread(s).".format(
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), platform.node(),
            platform.machine(), torch.__version__, args.threads),
        "* Command: `{}`".format(cmd),
    ]
    if args.note:
        lines.append("* Checkpoint: {}".format(args.note))
    lines += [
        "* Propagation level `{}` (stride {}), CONV_DIM {}, k {}: feature grid {}×{} (W×H) for "
        "{}-pixel input frames.".format(
            heads.mask_prop_in_feature, heads.mask_prop_stride, head.conv_dim, head.kernel_size,
            feat_hw[1], feat_hw[0], cfg.INPUT.MIN_SIZE_TRAIN[0]),
        "* {} clips ({} frames; T = {}, K = {}: the whole window), seed {}; {} rows "
        "(instance × frame, δ = 0 included), of which δ ≠ 0: {} with a non-empty GT "
        "({} with a non-empty GT ≥ 0.5 for bIoU) and {} with an empty GT.".format(
            n_clips_used, n_frames, args.half_length, cfg.INPUT.CLIP.NUM_SAMPLED_FRAMES,
            args.seed, n_rows, n_sel, n_bsel, n_empty),
        "* Loss check: per-row loss vs `propagation_losses` on every clip and setting, max "
        "|diff| = {:.1e}.".format(max_check),
        "* Wall {:.0f} s, CPU {:.0f} s.".format(
            time.time() - t_start, time.process_time() - cpu_start),
        "",
        "| setting | window (W×H, mean) | loss (all rows) | loss (δ≠0) | sIoU (δ≠0, GT≠∅) "
        "| rel. sIoU vs full | Δ sIoU ± SE (clips) | bIoU@0.5 | rel. bIoU vs full "
        "| agree w/ full (bIoU) | mean abs Δp vs full | rows resampled | GT mass outside window "
        "| loss on empty-GT rows |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "identity": "identity (no propagation)",
        "oracle": "GT itself as prediction (not a ceiling)",
    }
    for st in settings + [("identity", None), ("oracle", None)]:
        s = summ[st]
        is_full = st == full
        lines.append(("| {} " * 14 + "|").format(
            labels.get(st[0]) or name(st),
            "–" if st[0] in labels else s["win"],
            fmt(s["loss_all"]), fmt(s["loss_nz"]), fmt(s["siou"]),
            "ref" if is_full else rel(s["siou"], fs["siou"]),
            "ref" if is_full else "{:+.3f} ± {:.3f}".format(s["dsiou"], s["dsiou_se"]),
            fmt(s["biou"]),
            "ref" if is_full else rel(s["biou"], fs["biou"]),
            fmt(s["agree"]),
            fmt(s["dprob"], 4),
            "{:.0f}%".format(100 * s["resampled"]) if s["resampled"] is not None else "–",
            fmt(s["gt_out"]),
            fmt(s["loss_empty"]),
        ))
    # soft IoU by |δ|
    deltas = sorted(set(base["delta"].abs().tolist()) - {0})
    lines += [
        "",
        "sIoU (GT ≠ ∅) by frame distance |δ|:",
        "",
        "| setting | " + " | ".join("|δ|={} (n={})".format(
            d, int((sel & (base["delta"].abs() == d)).sum())) for d in deltas) + " |",
        "|---|" + "---|" * len(deltas),
    ]
    for st in settings + [("identity", None), ("oracle", None)]:
        c = cat[st]
        vals = []
        for d in deltas:
            m = sel & (base["delta"].abs() == d)
            vals.append(fmt(c["siou"][m].mean().item()) if m.any() else "–")
        lines.append("| {} | {} |".format(
            st[0] if st[0] in labels else name(st), " | ".join(vals)))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a" if args.append else "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
