"""MaskTrack R-CNN baseline (Yang et al., ICCV 2019; the paper's Table 3): association by a
learned embedding against a memory of the video's instances.

Every frame gets one backbone pass and its own detections (:meth:`MaskProp.detect_frame`: score
threshold, NMS, top-k), their masks pasted at the output size as in the frame-linking baseline.
Each detection is embedded by the model's tracking head (:class:`MaskTrackROIHeads`) and
associated with the instances seen so far by MaskTrack R-CNN's combined score (for detection i,
memory instance j):

    v(i, j)   = log p_i(j)   + a log s_i + b IoU(box_i, box_j) + c [class_i == class_j]
    v(i, new) = log p_i(new) + a log s_i + c

where p_i is the softmax over [0 ("new"), dot products with the memory's embeddings], s_i the
detection score, and a, b, c are ``TRACK_SCORE_WEIGHT``, ``TRACK_IOU_WEIGHT``,
``TRACK_CLASS_WEIGHT`` (1, 2, 10 as in MaskTrack R-CNN). MaskTrack R-CNN takes each detection's
best entry; here the frame's detections are assigned one-to-one (at most one detection per
memory instance) by maximising the summed score with ``scipy.optimize.linear_sum_assignment``.
A matched instance's memory takes the detection's embedding, box and class; a detection assigned
"new" starts an instance. The memory holds one entry per video instance (it grows with the
number of instances, not with the number of frames); frame outputs are final at once.
"""

from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.structures import Boxes
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

from ..modeling.meta_arch import FrameDetections
from ..modeling.track_head import match_logits
from .base import VIDEO_TRACKER_REGISTRY
from .frame_detections import PastedDetections
from .model_interface import EmbeddingHeads
from .outputs import IdAllocator
from .per_frame import PerFrameTracker

__all__ = ["EmbeddingMemory", "TrackingHeadTracker"]

_IMPOSSIBLE = -1e9


class EmbeddingMemory:
    """Online ID assignment from per-frame embeddings, boxes, classes and scores (no model).

    ``step(...)`` associates one frame's detections with the memory (see the module docstring)
    and returns their IDs (new IDs count up from ``first_id``).
    """

    def __init__(
        self,
        score_weight: float = 1.0,
        iou_weight: float = 2.0,
        class_weight: float = 10.0,
        first_id: int = 0,
    ):
        self.score_weight = float(score_weight)
        self.iou_weight = float(iou_weight)
        self.class_weight = float(class_weight)
        self.new_ids = IdAllocator(first_id)  # hands out the IDs of new tracks
        self.reset()

    def reset(self) -> None:
        self.new_ids.reset()
        self._ids = torch.zeros(0, dtype=torch.long)  # (m,) IDs of the memory's instances
        self._emb: Optional[torch.Tensor] = None  # (m, D) their last embeddings
        self._boxes = torch.zeros((0, 4))  # (m, 4) their last boxes
        self._classes = torch.zeros(0, dtype=torch.long)  # (m,) their last classes

    @property
    def num_ids(self) -> int:
        """Number of instances in the memory (= IDs handed out since the last reset)."""
        return len(self._ids)

    def scores(self, emb, boxes, classes, scores):
        """The combined scores: ((n, m) v(i, j), (n,) v(i, new))."""
        n = len(emb)
        log_s = self.score_weight * torch.log(scores.float().clamp_min(1e-6))
        if self._emb is None or not len(self._ids):
            logp_new = torch.zeros(n)  # softmax over the "new" entry alone
            return torch.zeros((n, 0)), logp_new + log_s + self.class_weight
        logp = F.log_softmax(match_logits(emb.float(), self._emb.float()), dim=1)
        iou = box_iou(boxes.float(), self._boxes.float())
        same = (classes[:, None] == self._classes[None, :]).float()
        v = logp[:, 1:] + log_s[:, None] + self.iou_weight * iou + self.class_weight * same
        return v, logp[:, 0] + log_s + self.class_weight

    def step(
        self, emb: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor:
        """Assign IDs to one frame's n detections.

        Args:
            emb: (n, D) embeddings; boxes: (n, 4) XYXY; classes: (n,) long; scores: (n,).
        Returns:
            (n,) long IDs.
        """
        emb, boxes = emb.detach().cpu(), boxes.detach().cpu()
        classes, scores = classes.detach().cpu(), scores.detach().cpu()
        n, m = len(emb), len(self._ids)
        ids = torch.full((n,), -1, dtype=torch.long)
        if n and m:
            v, v_new = self.scores(emb, boxes, classes, scores)
            w = np.full((n, m + n), _IMPOSSIBLE)
            w[:, :m] = v.double().numpy()
            w[np.arange(n), m + np.arange(n)] = v_new.double().numpy()
            rows, cols = linear_sum_assignment(w, maximize=True)
            matched = cols < m
            ids[torch.from_numpy(rows[matched])] = self._ids[torch.from_numpy(cols[matched])]
        new = self.new_ids.fill(ids)
        if n:
            # matched entries take the detection's state; new ones are appended
            pos = torch.searchsorted(self._ids, ids[~new])  # memory rows of the matched IDs
            if self._emb is None:
                self._emb = emb.new_zeros((0, emb.shape[1]))
            self._emb = self._emb.clone()
            self._emb[pos] = emb[~new]
            self._boxes[pos] = boxes[~new].float()
            self._classes[pos] = classes[~new]
            self._ids = torch.cat([self._ids, ids[new]])
            self._emb = torch.cat([self._emb, emb[new]])
            self._boxes = torch.cat([self._boxes, boxes[new].float()])
            self._classes = torch.cat([self._classes, classes[new]])
        return ids


@VIDEO_TRACKER_REGISTRY.register()
class TrackingHeadTracker(PerFrameTracker):
    """Per-frame detection + MaskTrack R-CNN's embedding association (see module docstring); the
    frame loop, votes and output are :class:`PerFrameTracker`'s.

    Needs a model with a tracking head (``MODEL.META_ARCHITECTURE: MaskTrackRCNN``,
    ``MODEL.ROI_HEADS.NAME: MaskTrackROIHeads``; ``configs/synthetic/masktrack_tiny.yaml``).

    Usage::

        tracker = build_video_tracker(cfg, model, "tracking_head")
        for out in tracker.stream(frames):  # one FrameOutput per frame, final at once
            ...
        instances = tracker.video_instances()
    """

    name = "tracking_head"
    heads_interface = EmbeddingHeads
    model_hint = (
        "a tracking head: MODEL.META_ARCHITECTURE: MaskTrackRCNN, MODEL.ROI_HEADS.NAME: "
        "MaskTrackROIHeads (see configs/synthetic/masktrack_tiny.yaml)"
    )

    @configurable
    def __init__(
        self,
        model,
        *,
        score_weight: float = 1.0,
        iou_weight: float = 2.0,
        class_weight: float = 10.0,
        **kwargs,
    ):
        """
        Args:
            model: a :class:`maskprop_d2.modeling.MaskTrackRCNN` (or any model whose ROI heads
                have ``embed``: :class:`maskprop_d2.tracking.model_interface.EmbeddingHeads`).
            kwargs: the detection settings, as :class:`PerFrameTracker`.
            score_weight, iou_weight, class_weight: a, b, c of the matching score.
        """
        self.weights = (score_weight, iou_weight, class_weight)
        super().__init__(model, **kwargs)

    @classmethod
    def from_config(cls, cfg, model):
        c = cfg.MODEL.MASKPROP.INFERENCE
        return {
            **super().from_config(cfg, model),
            "score_weight": c.TRACK_SCORE_WEIGHT,
            "iou_weight": c.TRACK_IOU_WEIGHT,
            "class_weight": c.TRACK_CLASS_WEIGHT,
        }

    def reset_association(self) -> None:
        self._memory = EmbeddingMemory(*self.weights)

    def associate(self, det: FrameDetections, pasted: PastedDetections) -> torch.Tensor:
        """Embed the kept detections' boxes and associate them with the memory."""
        boxes = det.instances.pred_boxes.tensor[pasted.keep.to(det.instances.pred_boxes.device)]
        emb = self.model.roi_heads.embed(det.features, [Boxes(boxes)])
        return self._memory.step(emb, pasted.boxes, pasted.classes, pasted.scores)

    def state_size(self) -> Dict[str, int]:
        """``memory``: instances in the association memory (= ``video_ids``, one per instance
        of the video, independent of its length)."""
        return {"memory": self._memory.num_ids, "video_ids": self._memory.num_ids}
