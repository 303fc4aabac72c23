"""Soft IoU of soft masks in [0, 1]: the one definition used by the propagation loss and by the
clip-matching ID assignment.

``sIoU(A, B) = sum_p A(p) B(p) / sum_p (A(p) + B(p) - A(p) B(p))``

Per pixel this is the seed's table: pred 0 / GT 0 contributes nothing; q / 0 adds q to the
denominator; 0 / 1 adds 1 to the denominator; q / 1 adds q to the numerator and 1 to the
denominator. When the denominator is 0 (both masks empty) the soft IoU is defined as 1: an
instance correctly predicted absent is a perfect match (loss 0). This module depends on torch only.
"""

import torch

__all__ = ["soft_iou", "pairwise_soft_iou"]


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
