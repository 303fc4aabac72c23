"""One frame's detections as binary masks at the output size, for the per-frame trackers."""

from dataclasses import dataclass
from typing import Dict, Optional

import torch

from ..modeling.mask_ops import paste_at_output_size
from ..modeling.meta_arch import FrameDetections

__all__ = ["PastedDetections", "paste_detections"]


@dataclass
class PastedDetections:
    """The n detections of a frame whose mask is not empty, in detection order.

    Attributes:
        masks: (n, H, W) bool, at the frame's output size.
        scores: (n,) detection scores.
        classes: (n,) long, contiguous category ids.
        class_probs: (n, K) class probabilities, or None when the model gives none.
        boxes: (n, 4) XYXY boxes in input-image pixels.
        keep: (N,) bool over all the frame's detections: which ones these are.
    """

    masks: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor
    class_probs: Optional[torch.Tensor]
    boxes: torch.Tensor
    keep: torch.Tensor


def paste_detections(det: FrameDetections, frame: Dict, mask_thresh: float) -> PastedDetections:
    """Paste ``det``'s soft masks at the output size (``frame``'s ``height``/``width``, default
    the image size), threshold them at ``mask_thresh`` and drop the empty ones (an empty mask can
    neither be linked nor evaluated). Tensors on the CPU."""
    inst = det.instances
    h, w = det.images.image_sizes[0]
    out_size = (int(frame.get("height", h)), int(frame.get("width", w)))
    soft = paste_at_output_size(det.mask_probs, inst.pred_boxes.tensor, (h, w), out_size)
    masks = (soft > mask_thresh).cpu()
    keep = masks.flatten(1).any(1)
    class_probs = inst.class_probs.cpu()[keep] if inst.has("class_probs") else None
    return PastedDetections(
        masks[keep],
        inst.scores.cpu()[keep],
        inst.pred_classes.cpu()[keep],
        class_probs,
        inst.pred_boxes.tensor.cpu()[keep],
        keep,
    )
