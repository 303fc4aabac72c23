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

from typing import Dict, Optional

import numpy as np
import torch
from detectron2.config import configurable
from scipy.optimize import linear_sum_assignment

from ..modeling.meta_arch import FrameDetections
from ..utils.masks import mask_iou
from .base import VIDEO_TRACKER_REGISTRY
from .frame_detections import PastedDetections
from .outputs import IdAllocator
from .per_frame import PerFrameTracker

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
        self.new_ids = IdAllocator(first_id)  # hands out the IDs of new tracks
        self.reset()

    def reset(self) -> None:
        self._frame = 0
        self.new_ids.reset()
        self._ids = torch.zeros(0, dtype=torch.long)  # (k,) IDs of the candidate tracks
        self._masks: Optional[torch.Tensor] = None  # (k, H, W) bool, their last masks
        self._last = torch.zeros(0, dtype=torch.long)  # (k,) frame each was last seen

    @property
    def num_ids(self) -> int:
        """Number of IDs handed out since the last reset."""
        return self.new_ids.num_ids

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
        self.new_ids.fill(ids)
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


@VIDEO_TRACKER_REGISTRY.register()
class FrameLinkingTracker(PerFrameTracker):
    """Per-frame detection + IoU linking over a video (see module docstring); the frame loop,
    votes and output are :class:`PerFrameTracker`'s.

    Usage::

        fl = build_video_tracker(cfg, model, "frame_linking")  # FrameLinkingTracker(cfg, model)
        for out in fl.stream(frames):  # one FrameOutput per frame, final at once
            ...
        instances = fl.video_instances()
    """

    name = "frame_linking"

    @configurable
    def __init__(self, model, *, link_iou_thresh: float = 0.3, max_gap: int = 0, **kwargs):
        """
        Args:
            model, kwargs: the detection settings, as :class:`PerFrameTracker`.
            link_iou_thresh: minimum mask IoU for a detection to continue a track.
            max_gap: frames a track may go undetected and still be re-linked (0: only the
                previous frame's tracks are candidates). Not a config key; pass it explicitly,
                e.g. ``FrameLinkingTracker(cfg, model, max_gap=2)``.
        """
        self.link_iou_thresh = link_iou_thresh
        self.max_gap = max_gap
        super().__init__(model, **kwargs)

    @classmethod
    def from_config(cls, cfg, model):
        c = cfg.MODEL.MASKPROP.INFERENCE
        return {**super().from_config(cfg, model), "link_iou_thresh": c.LINK_IOU_THRESH}

    def reset_association(self) -> None:
        self._linker = FrameLinker(self.link_iou_thresh, self.max_gap)

    def associate(self, det: FrameDetections, pasted: PastedDetections) -> torch.Tensor:
        return self._linker.step(pasted.masks)

    def state_size(self) -> Dict[str, int]:
        """``tracks``: link candidates kept with their last masks (<= topk with max_gap 0);
        ``video_ids``: IDs handed out so far."""
        return {"tracks": self._linker.num_tracks, "video_ids": self._linker.num_ids}
