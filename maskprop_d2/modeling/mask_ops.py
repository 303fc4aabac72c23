"""Moving instance masks between image resolution and a feature map's resolution."""

import torch
import torch.nn.functional as F

__all__ = ["masks_to_feature_resolution", "paste_soft_masks", "paste_at_output_size"]


def masks_to_feature_resolution(masks: torch.Tensor, feature_hw, stride: int) -> torch.Tensor:
    """Area-downsample image-resolution masks onto a feature grid.

    Args:
        masks: (N, h, w) bool/float masks in image pixels, h <= Hf*stride, w <= Wf*stride (the
            image is the top-left part of the padded batch, as in detectron2's ImageList).
        feature_hw: (Hf, Wf) size of the feature map.
        stride: the feature map's stride in image pixels.
    Returns:
        (N, Hf, Wf) float in [0, 1]: the fraction of each feature cell covered by the mask.
    """
    hf, wf = int(feature_hw[0]), int(feature_hw[1])
    n, h, w = masks.shape
    if n == 0:
        return masks.new_zeros((0, hf, wf), dtype=torch.float32)
    ph, pw = hf * stride - h, wf * stride - w
    if ph < 0 or pw < 0:
        raise ValueError(
            "mask size {}x{} exceeds the feature grid {}x{} at stride {}".format(
                h, w, hf, wf, stride
            )
        )
    x = F.pad(masks.float()[:, None], (0, pw, 0, ph))
    return F.avg_pool2d(x, kernel_size=stride, stride=stride)[:, 0]


def paste_soft_masks(masks: torch.Tensor, boxes: torch.Tensor, out_hw) -> torch.Tensor:
    """Paste box-relative soft masks into a full canvas with bilinear sampling.

    Args:
        masks: (N, M, M) soft masks in [0, 1], each covering its box.
        boxes: (N, 4) boxes XYXY in the canvas' pixel coordinates (may be fractional).
        out_hw: (H, W) canvas size.
    Returns:
        (N, H, W) float soft masks; zero outside each box.
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    n = masks.shape[0]
    if n == 0:
        return masks.new_zeros((0, h, w), dtype=torch.float32)
    dev = masks.device
    x0, y0, x1, y1 = boxes.float().unbind(1)
    ys = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
    # Normalised [-1, 1] coordinates of canvas pixel centres inside each box.
    gy = (ys[None] - y0[:, None]) / (y1 - y0).clamp(min=1e-6)[:, None] * 2 - 1  # (N, H)
    gx = (xs[None] - x0[:, None]) / (x1 - x0).clamp(min=1e-6)[:, None] * 2 - 1  # (N, W)
    grid = torch.stack([gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)], dim=3)
    out = F.grid_sample(masks[:, None].float(), grid, mode="bilinear", align_corners=False)
    return out[:, 0]


def add_soft_masks_in_boxes(
    total: torch.Tensor, index: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
    weights: torch.Tensor,
) -> None:
    """``total[index[i]] += weights[i] * paste_soft_masks(masks, boxes)[i]``, in place, sampling
    only each box's pixels (plus the bilinear fringe: half a mask cell and one pixel) instead of
    the whole canvas.

    Args:
        total: (U, H, W) float canvas stack, modified in place.
        index: (N,) long, the canvas of each mask.
        masks: (N, M, M) soft masks; boxes: (N, 4) XYXY canvas pixels; weights: (N,).
    """
    if masks.shape[0] == 0:
        return
    h, w = total.shape[-2:]
    b = boxes.float()
    m = torch.tensor([masks.shape[-1], masks.shape[-2]])
    fringe = ((b[:, 2:] - b[:, :2]).clamp(min=0) / (2 * m)).ceil().long() + 1  # (N, 2) x, y
    lo = b[:, :2].floor().long() - fringe
    hi = b[:, 2:].ceil().long() + fringe
    lo = torch.maximum(lo, lo.new_zeros(())).minimum(lo.new_tensor([w, h]))
    hi = torch.minimum(hi, hi.new_tensor([w, h]))
    size = (hi - lo).clamp(min=0)
    # Boxes are sampled on a common grid of the largest box's size: group them by size (powers
    # of two per side) so that a few large windows do not make every small one pay their area.
    key = torch.log2(size.clamp(min=1).float()).ceil().long()
    key = key[:, 0] * 64 + key[:, 1]
    for k in torch.unique(key).tolist():
        sel = (key == k).nonzero()[:, 0]
        _add_group(total, index[sel], masks[sel], b[sel], lo[sel], hi[sel], size[sel],
                   weights[sel])  # fmt: skip


def _add_group(total, index, masks, b, lo, hi, size, weights) -> None:
    """:func:`add_soft_masks_in_boxes` for boxes sampled on one (max height, max width) grid;
    ``lo``/``hi``/``size``: (N, 2) clipped pixel ranges (x, y) with one pixel of fringe."""
    n = masks.shape[0]
    h, w = total.shape[-2:]
    wb, hb = int(size[:, 0].max()), int(size[:, 1].max())
    if wb == 0 or hb == 0:
        return
    xs = lo[:, 0:1] + torch.arange(wb)[None]  # (N, wb) canvas columns
    ys = lo[:, 1:2] + torch.arange(hb)[None]  # (N, hb)
    x0, y0, x1, y1 = b.unbind(1)
    gx = (xs.float() + 0.5 - x0[:, None]) / (x1 - x0).clamp(min=1e-6)[:, None] * 2 - 1
    gy = (ys.float() + 0.5 - y0[:, None]) / (y1 - y0).clamp(min=1e-6)[:, None] * 2 - 1
    grid = torch.stack([gx[:, None, :].expand(n, hb, wb), gy[:, :, None].expand(n, hb, wb)], 3)
    vals = F.grid_sample(masks[:, None].float(), grid, mode="bilinear", align_corners=False)
    vals = vals[:, 0] * weights.float()[:, None, None]
    valid = (xs < hi[:, 0:1])[:, None, :] & (ys < hi[:, 1:2])[:, :, None]  # (N, hb, wb)
    flat = (index[:, None, None] * h + ys[:, :, None]) * w + xs[:, None, :]
    total.view(-1).index_add_(0, flat[valid], vals[valid])


def paste_at_output_size(mask_probs, boxes, image_size, out_size) -> torch.Tensor:
    """Paste box-relative soft masks of detections made on an (h, w) network input into an
    output canvas of ``out_size`` = (height, width). Returns (N, height, width) float on CPU."""
    height, width = out_size
    h, w = image_size
    scale = boxes.new_tensor([width / w, height / h, width / w, height / h])
    return paste_soft_masks(mask_probs, boxes * scale, (height, width)).cpu()
