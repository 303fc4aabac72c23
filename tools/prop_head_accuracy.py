#!/usr/bin/env python
"""Propagation quality of a trained head, independent of the detector: ground-truth centre masks
propagated to the other frames of a clip, scored against the GT there (synthetic val clips).

Clips: ``ClipDatasetMapper(cfg, is_train=True)``, no flip/jitter/crop, the whole window of T;
clip i from video i mod #videos, numpy seeded. Rows as ``propagation_losses``: each centre GT
instance (area-downsampled to the propagation level) to each frame at δ ≠ 0 with a non-empty GT.
Metric: soft IoU of ``sigmoid(logits)`` with the area-fraction GT. Settings: full frame and each
S × m, set in place on the same weights; "resampled": windows not exactly S×S (box + 2m > S),
which the head sees at another scale. Baseline: the centre mask copied unchanged.

    python tools/prop_head_accuracy.py --weights output/synthetic/maskprop_tiny/model_final.pth \\
        --roi-sizes 8 16 24 --margins 2 4 --num-clips 48 --half-length 3 \\
        --out benchmarks/prop_quality_synthetic.md
"""

import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="tiny")
    p.add_argument("--weights", required=True)
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    p.add_argument("--dataset", default="synthetic_ytvis_val")
    p.add_argument("--num-clips", type=int, default=48)
    p.add_argument("--half-length", type=int, default=3)
    p.add_argument("--roi-sizes", type=int, nargs="*", default=[16])
    p.add_argument("--margins", type=float, nargs="*", default=None, help="default: the config's")
    p.add_argument("--out", default="")
    a = p.parse_args()
    bc.set_threads(1)
    rep = bc.Report("Propagation quality from GT centre masks (synthetic)")
    import numpy as np
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import build_model

    from maskprop_d2.checkpoint import load_inference_weights
    from maskprop_d2.data import ClipDatasetMapper
    from maskprop_d2.modeling.mask_ops import masks_to_feature_resolution as down
    from maskprop_d2.modeling.propagation import BOX_MASK_THRESH
    from maskprop_d2.utils.masks import boxes_from_masks, soft_iou

    cfg = bc.load_cfg(a.config, list(a.opts) + [
        "INPUT.RANDOM_FLIP", "none", "INPUT.COLOR_JITTER.ENABLED", False, "INPUT.CROP.ENABLED",
        False, "INPUT.CLIP.HALF_LENGTH", a.half_length,
        "INPUT.CLIP.NUM_SAMPLED_FRAMES", 2 * a.half_length], a.weights)  # fmt: skip
    torch.manual_seed(0)
    np.random.seed(0)
    model = build_model(cfg).eval()
    load_inference_weights(model, a.weights, a.config)
    heads = model.roi_heads
    head, stride = heads.mask_prop_head, heads.mask_prop_stride
    margins = a.margins or [float(cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_MARGIN)]
    settings = [(0, head.roi_margin)] + [(s, m) for s in a.roi_sizes if s for m in margins]
    records, mapper = DatasetCatalog.get(a.dataset), ClipDatasetMapper(cfg, is_train=True)
    siou, resampled, deltas, clips = defaultdict(list), defaultdict(list), [], 0
    with torch.no_grad():
        for i in range(a.num_clips):
            clip = mapper(records[i % len(records)])
            if not len(clip["instances"][clip["center"]]):
                continue
            clips += 1
            frames = [{"image": im} for im in clip["image"]]
            feats = model.backbone(model.preprocess_image(frames).tensor)
            reduced = head.reduce(feats[heads.mask_prop_in_feature])
            feat_hw = tuple(reduced.shape[-2:])
            c, ids, insts = clip["center"], clip["frame_ids"], clip["instances"]
            gt = torch.cat([down(x.gt_masks.tensor, feat_hw, stride) for x in insts])
            src = down(insts[c].gt_masks.tensor, feat_hw, stride).repeat(len(ids), 1, 1)
            dst = torch.arange(len(ids)).repeat_interleave(len(insts[c]))  # rows (frame, instance)
            delta = (torch.tensor(ids) - ids[c]).repeat_interleave(len(insts[c]))
            keep = (delta != 0) & (gt.flatten(1).sum(1) > 0)
            deltas.append(delta[keep].abs())
            centre = reduced[c][None].expand_as(reduced)  # pair f: centre -> frame f
            siou["copy of the centre mask"].append(soft_iou(src, gt)[keep])
            for s, m in settings:
                head.roi_size, head.roi_margin = s, m
                logits = head(centre, reduced, src, dst)
                siou[(s, m)].append(soft_iou(logits.float().sigmoid(), gt)[keep])
                if s:
                    win = head.roi_windows(boxes_from_masks(src, thresh=BOX_MASK_THRESH), feat_hw)
                    wh = (win[:, 2:] - win[:, :2]).round()
                    resampled[(s, m)].append((wh != s).any(1)[keep].float())
    deltas = torch.cat(deltas)
    full = torch.cat(siou[settings[0]]).mean().item()
    dist = sorted(set(deltas.tolist()))
    rows = []
    for key, vals in siou.items():
        v = torch.cat(vals)
        name = key if isinstance(key, str) else (
            "full frame" if key[0] == 0 else "ROI S={} m={:g}".format(*key))  # fmt: skip
        rs = "{:.0f}%".format(100 * torch.cat(resampled[key]).mean()) if key in resampled else "–"
        rel = "{:+.1f}%".format(100 * (v.mean() / full - 1))
        by_d = ["{:.3f}".format(v[deltas == d].mean()) for d in dist]
        rows.append([name, "{:.3f}".format(v.mean()), rel, rs] + by_d)
    rep.add("`{}` + `{}` on `{}`: {} clips, T = {}, the whole window; {} rows (δ ≠ 0, GT ≠ ∅); "
            "propagation level {}, grid {}×{} (W×H).".format(
                a.config, a.weights, a.dataset, clips, a.half_length, len(deltas),
                heads.mask_prop_in_feature, feat_hw[1], feat_hw[0]))  # fmt: skip
    rep.table(["setting", "soft IoU", "vs full frame", "rows resampled"]
              + ["δ = ±{}".format(d) for d in dist], rows)  # fmt: skip
    rep.save(a.out)


if __name__ == "__main__":
    main()
