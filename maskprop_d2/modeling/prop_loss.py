"""The propagation loss L_prop of MaskProp (``docs/method.md``): mean over rows of 1 − soft IoU.

Rows whose GT is empty (the instance is absent from the target frame) need care: with sigmoid
probabilities the prediction is never exactly 0, so the plain soft IoU of such a row is 0 (loss 1)
for *any* prediction and carries no gradient. Those rows instead get ``q / (q + empty_smooth)``,
``q = Σ_p sigmoid(pred)(p)`` the predicted mass: 0 for an empty prediction (consistent with
soft_iou's empty/empty = 1), 0.5 for one pixel of mass (``empty_smooth`` = 1), → 1 as the mass
grows, with a gradient that pushes the prediction toward empty. Rows with a non-empty GT use the
exact soft IoU.

Optionally (``bce_weight`` > 0, not in the paper) a per-pixel binary cross-entropy against the
same (soft) targets, averaged over every pixel of every row, is added to the soft-IoU term.
"""
import torch
import torch.nn.functional as F

from ..utils.masks import soft_iou

__all__ = ["mask_prop_loss"]


def mask_prop_loss(
    pred_logits: torch.Tensor,
    gt_masks: torch.Tensor,
    empty_smooth: float = 1.0,
    bce_weight: float = 0.0,
) -> torch.Tensor:
    """Mean over (instance, target frame) rows of ``1 − sIoU(sigmoid(pred), gt)``, plus
    ``bce_weight`` × the mean per-pixel binary cross-entropy.

    Args:
        pred_logits: (N, H, W) propagated mask logits.
        gt_masks: (N, H, W) the same instances' GT masks in the target frames, binary or soft in
            [0, 1]; an all-zero row means the instance is absent from that frame.
        empty_smooth: pixel mass at which an empty-GT row costs 0.5 (see the module docstring).
        bce_weight: weight of the per-pixel cross-entropy term (0: the paper's loss alone).
    Returns:
        Scalar loss, in [0, 1] without the cross-entropy term. Empty-GT rows cost
        ``q / (q + empty_smooth)`` (≈ 0 for an empty prediction). N = 0 gives 0, still connected
        to the graph of ``pred_logits``.
    """
    if pred_logits.shape != gt_masks.shape:
        raise ValueError(
            "mask_prop_loss: shapes differ: {} vs {}".format(
                tuple(pred_logits.shape), tuple(gt_masks.shape)
            )
        )
    if pred_logits.shape[0] == 0:
        return pred_logits.sum() * 0.0
    prob = torch.sigmoid(pred_logits.float())
    gt = gt_masks.to(prob.dtype)
    loss = 1.0 - soft_iou(prob, gt)  # (N,)
    gt_empty = gt.flatten(1).sum(1) <= 0
    mass = prob.flatten(1).sum(1)
    loss = torch.where(gt_empty, mass / (mass + empty_smooth), loss).mean()
    if bce_weight > 0:
        bce = F.binary_cross_entropy_with_logits(pred_logits.float(), gt)
        loss = loss + bce_weight * bce
    return loss
