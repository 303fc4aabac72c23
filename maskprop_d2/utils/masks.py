"""Mask geometry on tensors: soft IoU, hard (binary) IoU and boxes from masks.

Soft IoU of soft masks in [0, 1] is the one definition used by the propagation loss and by the
clip-matching ID assignment::

    sIoU(A, B) = sum_p A(p) B(p) / sum_p (A(p) + B(p) - A(p) B(p))

Per pixel: prediction 0 / target 0 contributes nothing; q / 0 adds q to the denominator; 0 / 1
adds 1 to the denominator; q / 1 adds q to the numerator and 1 to the denominator. When the
denominator is 0 (both masks empty) the soft IoU is defined as 1: an instance correctly predicted
absent is a perfect match. On binary masks it equals the ordinary IoU (except for that case:
:func:`mask_iou` gives 0 for two empty masks).

This module depends on torch only.
"""

from typing import Optional

import torch

__all__ = ["soft_iou", "pairwise_soft_iou", "mask_iou", "boxes_from_masks"]


def soft_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise soft IoU.

    Args:
        a, b: soft masks of the same shape (..., H, W) with values in [0, 1].
    Returns:
        Tensor of shape (...): soft IoU per mask pair; 1 where both masks are empty.
    """
    if a.shape != b.shape:
        raise ValueError("soft_iou: shapes differ: {} vs {}".format(tuple(a.shape), tuple(b.shape)))
    a = a.flatten(-2).float()
    b = b.flatten(-2).float()
    inter = (a * b).sum(-1)
    union = (a + b - a * b).sum(-1)
    empty = union <= 0
    return torch.where(empty, torch.ones_like(inter), inter / torch.where(empty, 1.0, union))


def pairwise_soft_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Soft IoU of every mask in ``a`` with every mask in ``b``.

    Args:
        a: (N, H, W) or (N, P) soft masks; b: (M, H, W) or (M, P) soft masks of the same size.
    Returns:
        (N, M) soft IoU; 1 where both masks are empty.
    """
    a = a.reshape(a.shape[0], -1).float()
    b = b.reshape(b.shape[0], -1).float()
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            "pairwise_soft_iou: mask sizes differ: {} vs {}".format(a.shape[1], b.shape[1])
        )
    inter = a @ b.t()
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    empty = union <= 0
    return torch.where(empty, torch.ones_like(inter), inter / torch.where(empty, 1.0, union))


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of two sets of binary masks, by one matrix product on the flattened masks.

    Args:
        a: (n, H, W) bool masks; b: (m, H, W) bool masks of the same size.
    Returns:
        (n, m) float IoU; 0 where both masks are empty.
    """
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            "mask sizes differ: {} vs {}".format(tuple(a.shape[1:]), tuple(b.shape[1:]))
        )
    af = a.flatten(1).float()
    bf = b.to(a.device).flatten(1).float()
    inter = af @ bf.T  # exact integer counts up to 2^24 pixels per mask
    union = af.sum(1)[:, None] + bf.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def boxes_from_masks(masks: torch.Tensor, thresh: Optional[float] = None) -> torch.Tensor:
    """Tight XYXY boxes of masks, in pixels of the mask grid; x1 and y1 are exclusive.

    Args:
        masks: (N, H, W) bool masks, or soft masks with ``thresh`` (foreground: ``> thresh``).
        thresh: None for bool (or 0/1) masks: foreground is any non-zero value.
    Returns:
        (N, 4) float32 boxes on the masks' device; an empty mask gives (0, 0, 0, 0).
    """
    _, h, w = masks.shape
    fg = masks.bool() if thresh is None else masks > thresh
    cols = fg.any(dim=1)  # (N, W)
    rows = fg.any(dim=2)  # (N, H)
    ar_w = torch.arange(w, device=masks.device)
    ar_h = torch.arange(h, device=masks.device)
    big = max(h, w) + 1
    x0 = torch.where(cols, ar_w, big).amin(dim=1)
    x1 = torch.where(cols, ar_w + 1, 0).amax(dim=1)
    y0 = torch.where(rows, ar_h, big).amin(dim=1)
    y1 = torch.where(rows, ar_h + 1, 0).amax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    empty = ~cols.any(dim=1)
    return torch.where(empty[:, None], torch.zeros_like(boxes), boxes)
