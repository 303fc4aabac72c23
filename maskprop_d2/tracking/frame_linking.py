"""Per-frame baseline (the paper's Table 3): frame-level masks linked over time by mask IoU.

The same MaskProp model is used, but only its Mask R-CNN part: every frame gets one backbone pass
and its own detections (score threshold, top-k; :meth:`MaskProp.detect_frame`, the code path
:class:`MaskPropTracker` uses), whose masks are pasted at the output size and thresholded. There is
no propagation. The detections of frame t are linked to the tracks of frame t-1 by an optimal
one-to-one assignment on mask IoU (:func:`link_by_iou`); a detection left without a partner of
IoU >= ``LINK_IOU_THRESH`` starts a new video ID.

Frame t's output is final as soon as frame t has been processed (no delay). Only the masks of the
previous frame's tracks are kept (plus, with ``max_gap`` > 0, the last masks of tracks missed in
the last ``max_gap`` frames), so memory does not grow with the video length.
"""

from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from scipy.optimize import linear_sum_assignment

from ..utils.masks import mask_iou
from .base import VIDEO_TRACKER_REGISTRY, VideoTracker, detection_args
from .frame_detections import paste_detections
from .outputs import CategoryVotes, FrameOutput, VideoInstance

__all__ = ["link_by_iou", "FrameLinker", "FrameLinkingTracker"]


def link_by_iou(iou, thresh: float) -> torch.Tensor:
    """One-to-one links between detections (rows) and tracks (columns).

    The assignment maximises the summed IoU over admissible pairs (IoU >= ``thresh`` and > 0) with
    ``scipy.optimize.linear_sum_assignment``; inadmissible pairs are never linked, so two
    detections can never take the same track.

    Args:
        iou: (n, m) IoU matrix (tensor or array).
        thresh: minimum IoU of a link (IoU equal to it links).
    Returns:
        (n,) long: the linked column of each row, or -1 (the row starts a new track).
    """
    w = torch.as_tensor(iou).detach().cpu().double().numpy()
    n = w.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    ok = (w >= thresh) & (w > 0)
    if ok.any():
        rows, cols = linear_sum_assignment(np.where(ok, w, 0.0), maximize=True)
        good = ok[rows, cols]
        out[rows[good]] = cols[good]
    return torch.from_numpy(out)


class FrameLinker:
    """Online ID assignment from per-frame binary masks (no detectron2 needed).

    ``step(masks)`` takes one frame's masks, links them to the current tracks with
    :func:`link_by_iou` on :func:`mask_iou`, and returns their IDs (new IDs count up from
    ``first_id``). Tracks are the previous frame's masks; with ``max_gap`` = g > 0 a track that was
    not matched stays a candidate (with its last mask) for g more frames, so it can be re-linked
    after up to g missed detections.
    """

    def __init__(self, iou_thresh: float, max_gap: int = 0, first_id: int = 0):
        if max_gap < 0:
            raise ValueError("max_gap must be >= 0, got {}".format(max_gap))
        self.iou_thresh = float(iou_thresh)
        self.max_gap = int(max_gap)
        self.first_id = int(first_id)
        self.reset()

    def reset(self) -> None:
        self._frame = 0
        self._next_id = self.first_id
        self._ids = torch.zeros(0, dtype=torch.long)  # (k,) IDs of the candidate tracks
        self._masks: Optional[torch.Tensor] = None  # (k, H, W) bool, their last masks
        self._last = torch.zeros(0, dtype=torch.long)  # (k,) frame each was last seen

    @property
    def num_ids(self) -> int:
        """Number of IDs handed out since the last reset."""
        return self._next_id - self.first_id

    @property
    def num_tracks(self) -> int:
        """Number of tracks currently kept as link candidates (with their masks)."""
        return len(self._ids)

    def step(self, masks: torch.Tensor) -> torch.Tensor:
        """Assign IDs to one frame's (n, H, W) bool masks; returns (n,) long IDs."""
        t = self._frame
        self._frame += 1
        masks = masks.bool()
        n = len(masks)
        ids = torch.full((n,), -1, dtype=torch.long)
        if n and len(self._ids):
            cols = link_by_iou(mask_iou(masks, self._masks), self.iou_thresh)
            linked = cols >= 0
            ids[linked] = self._ids[cols[linked]]
        new = ids < 0
        k = int(new.sum())
        ids[new] = torch.arange(self._next_id, self._next_id + k, dtype=torch.long)
        self._next_id += k
        # Candidates for frame t+1: this frame's tracks, plus unmatched older tracks whose number
        # of missed frames at t+1, (t+1) - last - 1, is still <= max_gap.
        keep = (self._last >= t - self.max_gap) & ~torch.isin(self._ids, ids)
        if self._masks is None or not bool(keep.any()):
            self._ids, self._masks = ids, masks
            self._last = torch.full((n,), t, dtype=torch.long)
        else:
            self._ids = torch.cat([ids, self._ids[keep]])
            self._masks = torch.cat([masks, self._masks[keep].to(masks.device)])
            self._last = torch.cat([torch.full((n,), t, dtype=torch.long), self._last[keep]])
        return ids


@VIDEO_TRACKER_REGISTRY.register(name="frame_linking")
class FrameLinkingTracker(VideoTracker):
    """Per-frame detection + IoU linking over a video (see module docstring).

    Usage::

        fl = build_video_tracker(cfg, model, "frame_linking")  # FrameLinkingTracker(cfg, model)
        for out in fl.stream(frames):  # one FrameOutput per frame, final at once
            ...
        instances = fl.video_instances()

    Attributes:
        backbone_calls: backbone passes since construction (one per frame).
    """

    @configurable
    def __init__(
        self,
        model,
        *,
        score_thresh: float = 0.3,
        topk_per_frame: int = 10,
        nms_thresh: float = 1.0,
        link_iou_thresh: float = 0.3,
        mask_thresh: float = 0.5,
        max_instances: int = 100,
        max_gap: int = 0,
        categories_per_instance: int = 1,
    ):
        """
        Args:
            model: a :class:`maskprop_d2.modeling.MaskProp` (only its Mask R-CNN part is used).
            score_thresh, topk_per_frame, nms_thresh: which detections of a frame are kept (see
                :meth:`maskprop_d2.modeling.MaskProp.detect_frame`).
            link_iou_thresh: minimum mask IoU for a detection to continue a track.
            mask_thresh: threshold on the pasted soft masks.
            max_instances: at most this many video instances are reported (by score).
            max_gap: frames a track may go undetected and still be re-linked (0: only the
                previous frame's tracks are candidates). Not a config key; pass it explicitly,
                e.g. ``FrameLinkingTracker(cfg, model, max_gap=2)``.
            categories_per_instance: each video instance is reported with up to this many
                categories (see :class:`CategoryVotes`).
        """
        super().__init__(model)
        self.score_thresh = score_thresh
        self.topk = topk_per_frame
        self.nms_thresh = nms_thresh
        self.link_iou_thresh = link_iou_thresh
        self.mask_thresh = mask_thresh
        self.max_instances = max_instances
        self.max_gap = max_gap
        self.categories_per_instance = categories_per_instance
        self.backbone_calls = 0
        self.reset()

    @classmethod
    def from_config(cls, cfg, model):
        c = cfg.MODEL.MASKPROP.INFERENCE
        return {
            "model": model,
            **detection_args(cfg),
            "link_iou_thresh": c.LINK_IOU_THRESH,
        }

    def reset(self) -> None:
        self._num_frames = 0
        self._linker = FrameLinker(self.link_iou_thresh, self.max_gap)
        self._votes = CategoryVotes(
            self.model.roi_heads.num_classes, self.categories_per_instance
        )

    def update(self, frame: Dict) -> List[FrameOutput]:
        """Detect, link and hand out the frame at once (no delay)."""
        idx = self._num_frames
        self._num_frames += 1
        det = self.model.detect_frame(frame, self.score_thresh, self.topk, self.nms_thresh)
        self.backbone_calls += 1
        d = paste_detections(det, frame, self.mask_thresh)
        masks, scores, classes, class_probs = d.masks, d.scores, d.classes, d.class_probs
        ids = self._linker.step(masks)
        self._votes.add(ids.tolist(), classes, scores, class_probs)
        order = torch.argsort(ids)
        return [FrameOutput(idx, ids[order], masks[order])]

    def finish(self) -> List[FrameOutput]:
        return []

    def current_instance(self, instance_id: int) -> Optional[VideoInstance]:
        """Category and score of an ID from the detections seen so far (None if unknown)."""
        return self._votes.get(instance_id)

    def video_instances(self) -> List[VideoInstance]:
        """All video instances of the last streamed video, by decreasing score (at most
        ``max_instances``); see :class:`CategoryVotes` (one vote per detection)."""
        return self._votes.ranked(self.max_instances)

    def state_size(self) -> Dict[str, int]:
        """``tracks``: link candidates kept with their last masks (<= topk with max_gap 0);
        ``video_ids``: IDs handed out so far."""
        return {"tracks": self._linker.num_tracks, "video_ids": self._linker.num_ids}
