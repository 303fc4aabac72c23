#!/usr/bin/env python
"""Propagation quality of a trained head, independent of the detector: ground-truth centre masks
propagated to the other frames of a clip, scored against the GT there (synthetic val clips).

Clips: ``ClipDatasetMapper(cfg, is_train=True)``, no flip/jitter/crop, the whole window of T;
clip i from video i mod #videos, numpy seeded. Rows: each centre GT instance to each frame at
δ ≠ 0 where its GT is not empty. Every mask is resized to the video's frame size (the output
resolution, as the tracker does; ``--resolution input`` keeps the network input's) and compared
with the binary GT there: soft IoU of the probabilities, hard IoU of the masks thresholded at 0.5.

Settings (one table row each):
* the head as configured (``FINE_CROPS``: crops pasted at image resolution; else the grid,
  upsampled bilinearly as the tracker does);
* ceilings: the target's own GT stored at the head's output resolution (the feature grid, and
  the crops if the head uses them) and resized back: what a perfect propagation could score;
* OpenCV DIS optical flow from the target frame to the centre frame at image resolution, the
  centre GT mask warped with it (one direct flow per pair: stronger than the tracker's chained
  grid flows);
* the centre GT mask copied unchanged.

A second table says where the hard masks go wrong: the distance between the centroids of the
mask and of the GT (output pixels; motion) and the ratio of their areas (shape), per δ.

    python tools/prop_head_accuracy.py --weights output/synthetic/maskprop_tiny/model_final.pth \\
        --num-clips 48 --half-length 3 --out benchmarks/prop_quality_synthetic.md
"""

import argparse
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402


def centroid_and_area(pred, gt):
    """(n, h, w) bool predicted / GT masks -> (n, 2): the distance between their centroids (pixels;
    NaN when the prediction is empty) and the ratio of their areas."""
    import torch

    h, w = gt.shape[-2:]
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(w, dtype=torch.float32)[None, None, :]

    def centre(m):
        m = m.float()
        a = m.sum((1, 2))
        return torch.stack([(m * ys).sum((1, 2)), (m * xs).sum((1, 2))], 1) / a[:, None], a

    cp, ap = centre(pred)
    cg, ag = centre(gt)
    return torch.stack([(cp - cg).norm(dim=1), ap / ag], 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="tiny")
    p.add_argument("--weights", required=True)
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    p.add_argument("--dataset", default="synthetic_ytvis_val")
    p.add_argument("--num-clips", type=int, default=48)
    p.add_argument("--half-length", type=int, default=3)
    p.add_argument("--resolution", choices=["frame", "input"], default="frame")
    p.add_argument("--out", default="")
    a = p.parse_args()
    bc.set_threads(1)
    rep = bc.Report("Propagation quality from GT centre masks (synthetic)")
    import numpy as np
    import torch
    import torch.nn.functional as F
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import build_model

    from maskprop_d2.checkpoint import load_inference_weights
    from maskprop_d2.data import ClipDatasetMapper
    from maskprop_d2.modeling.mask_ops import masks_to_feature_resolution as down
    from maskprop_d2.modeling.propagation import masks_in_windows
    from maskprop_d2.tracking.clip_tracks import FrameGeometry, _crops_to_output
    from maskprop_d2.tracking.flow_propagation import grey_image, optical_flow, warp_masks
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
    head, stride, fine = heads.mask_prop_head, heads.mask_prop_stride, heads.fine_crops
    records, mapper = DatasetCatalog.get(a.dataset), ClipDatasetMapper(cfg, is_train=True)
    scores, deltas, clips = defaultdict(list), [], 0
    shape = defaultdict(list)  # name -> (rows, 2): centroid error (px), area ratio

    def grid_to_image(grid, hw):  # (n, H', W') -> (n, h, w), as the tracker resizes the grid
        up = F.interpolate(grid[:, None], scale_factor=stride, mode="bilinear",
                           align_corners=False)[:, 0]  # fmt: skip
        return up[:, : hw[0], : hw[1]]

    def add(name, prob, gt, keep):
        prob, gt = prob[keep].float(), gt[keep].float()
        if a.resolution == "frame" and len(gt) and tuple(gt.shape[-2:]) != out_hw:
            prob = F.interpolate(prob[:, None], size=out_hw, mode="bilinear",
                                 align_corners=False)[:, 0]  # fmt: skip
            gt = (F.interpolate(gt[:, None], size=out_hw, mode="area")[:, 0] > 0.5).float()
        scores[name].append(torch.stack([soft_iou(prob, gt), soft_iou((prob > 0.5).float(), gt)]))
        if not name.startswith("ceiling"):  # a ceiling is the GT itself, resized
            shape[name].append(centroid_and_area(prob > 0.5, gt > 0.5))

    with torch.no_grad():
        for i in range(a.num_clips):
            record = records[i % len(records)]
            clip = mapper(record)
            out_hw = (int(record["height"]), int(record["width"]))
            c, ids, insts = clip["center"], clip["frame_ids"], clip["instances"]
            n = len(insts[c])
            if not n:
                continue
            clips += 1
            frames = [{"image": im} for im in clip["image"]]
            feats = model.backbone(model.preprocess_image(frames).tensor)
            reduced = head.reduce(feats[heads.mask_prop_in_feature])
            feat_hw = tuple(reduced.shape[-2:])
            hw = tuple(insts[c].gt_masks.tensor.shape[-2:])
            nf = len(ids)
            gt = torch.cat([x.gt_masks.tensor for x in insts]).float()  # rows (frame, instance)
            src_full = insts[c].gt_masks.tensor.float()
            src = src_full.repeat(nf, 1, 1)
            pair = torch.arange(nf).repeat_interleave(n)
            delta = (torch.tensor(ids) - ids[c]).repeat_interleave(n)
            keep = (delta != 0) & (gt.flatten(1).sum(1) > 0)
            deltas.append(delta[keep].abs())
            centre = reduced[c][None].expand_as(reduced)  # pair f: centre -> frame f
            add("copy of the centre mask", src, gt, keep)
            add("ceiling: GT on the feature grid", grid_to_image(down(gt, feat_hw, stride), hw),
                gt, keep)  # fmt: skip
            # the flow baseline: target -> centre flow at image resolution, centre mask warped
            greys = [grey_image(im) for im in clip["image"]]
            warped = []
            for f in range(nf):
                flow = torch.from_numpy(optical_flow(greys[f], greys[c])).permute(2, 0, 1)
                warped.append(warp_masks(src_full, flow))
            add("OpenCV DIS flow warp (image resolution)", torch.cat(warped), gt, keep)
            if fine:
                box = boxes_from_masks(src_full > 0.5)
                win = heads.prop_windows(box, feat_hw).repeat(nf, 1)
                geo = FrameGeometry(hw, hw, stride)
                ceil = masks_in_windows(gt, win, stride, head.roi_size)
                add("ceiling: GT on the head's crops", _crops_to_output(ceil, win, geo), gt, keep)
                crops = heads.propagate_crops(
                    centre, reduced, masks_in_windows(src, win, stride, head.roi_size), win, pair
                )
                prob = _crops_to_output(crops.sigmoid(), win, geo)
                name = "MaskProp head (crops {0}×{0})".format(head.roi_size)
            else:
                grid_src = down(src, feat_hw, stride)
                prob = grid_to_image(heads.propagate(centre, reduced, grid_src, pair).sigmoid(), hw)
                name = "MaskProp head (feature grid)"
            add(name, prob, gt, keep)
    deltas = torch.cat(deltas)
    dist = sorted(set(deltas.tolist()))
    rows = []
    for name, vals in scores.items():
        v = torch.cat(vals, dim=1)  # (2, rows)
        by_d = [" / ".join("{:.3f}".format(v[j][deltas == d].mean()) for d in dist)
                for j in (0, 1)]  # fmt: skip
        rows.append([name, "{:.3f}".format(v[0].mean()), "{:.3f}".format(v[1].mean())] + by_d)
    rep.add("`{}` + `{}` on `{}`: {} clips, T = {}, the whole window; {} rows (δ ≠ 0, GT ≠ ∅); "
            "propagation level {} (stride {}), grid {}×{} (W×H){}; scored at the {} "
            "resolution.".format(
                a.config, a.weights, a.dataset, clips, a.half_length, len(deltas),
                heads.mask_prop_in_feature, stride, feat_hw[1], feat_hw[0],
                ", crops {0}×{0} on windows of at least {1:g} cells".format(
                    head.roi_size, head.roi_min_window or head.roi_size) if fine else "",
                "frame (output)" if a.resolution == "frame" else "network input"))
    ds = " / ".join("±{}".format(d) for d in dist)
    rep.table(["setting", "soft IoU", "hard IoU", "soft IoU at δ = " + ds,
               "hard IoU at δ = " + ds], rows)  # fmt: skip
    rows = []
    for name, vals in shape.items():
        v = torch.cat(vals)  # (rows, 2)
        err = " / ".join("{:.2f}".format(v[deltas == d, 0].nanmedian()) for d in dist)
        q = [torch.quantile(v[deltas == d, 1], torch.tensor([0.25, 0.5, 0.75])) for d in dist]
        ratio = " / ".join("{:.2f} {:.2f} {:.2f}".format(*x.tolist()) for x in q)
        rows.append([name, err, ratio])
    rep.table(["setting", "centroid error, median (px) at δ = " + ds,
               "area ÷ GT area, quartiles at δ = " + ds], rows,
              "Where the hard masks go wrong (rows with an empty hard mask have no centroid and "
              "are left out of the error):")  # fmt: skip
    rep.save(a.out)


if __name__ == "__main__":
    main()
