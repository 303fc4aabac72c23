"""The shared part of the per-frame trackers: detect every frame, give its detections IDs, hand
the frame out at once.

:class:`PerFrameTracker` holds what the per-frame trackers (``frame_linking``,
``tracking_head``) share: the detection settings, the frame loop (detect, paste at the output
size, associate, vote, output), the category votes and the video instances. A subclass supplies
only its association rule: :meth:`PerFrameTracker.reset_association` and
:meth:`PerFrameTracker.associate`.
"""

from typing import Dict, List

import torch
from detectron2.config import configurable

from ..modeling.meta_arch import FrameDetections
from .base import DetectionTracker
from .frame_detections import PastedDetections, paste_detections
from .model_interface import DetectionHeads
from .outputs import CategoryVotes, FrameOutput

__all__ = ["PerFrameTracker"]


class PerFrameTracker(DetectionTracker):
    """Base of the trackers that detect every frame and hand it out as soon as it is processed.

    Each frame gets one backbone pass and its own detections (:meth:`MaskProp.detect_frame`:
    score threshold, NMS, top-k), whose masks are pasted at the output size and thresholded
    (:func:`paste_detections`; empty ones dropped). The subclass's :meth:`associate` gives them
    video IDs (new IDs from an :class:`IdAllocator`); each detection then casts one category vote
    for its ID (:class:`CategoryVotes`), and the frame's :class:`FrameOutput` lists the IDs in
    increasing order. There is no delay: :meth:`finish` has nothing left to hand out.

    Subclasses set the attributes their association needs before calling ``__init__`` (which
    calls :meth:`reset`), and extend :meth:`from_config`.
    """

    heads_interface = DetectionHeads

    @configurable
    def __init__(self, model, **kwargs):
        """
        Args:
            model: a :class:`maskprop_d2.modeling.MaskProp` (only its Mask R-CNN part is used).
            kwargs: the detection settings (:class:`DetectionTracker`).
        """
        super().__init__(model, **kwargs)
        self.reset()

    # ------------------------------------------------------------------ the association rule
    def reset_association(self) -> None:
        """Forget the previous video's association state (its IDs restart at 0)."""
        raise NotImplementedError

    def associate(self, det: FrameDetections, pasted: PastedDetections) -> torch.Tensor:
        """The (n,) long video IDs of the frame's n pasted detections (``pasted``; ``det`` is
        the model's output they come from, ``pasted.keep`` selects them from it)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ VideoTracker
    def reset(self) -> None:
        self._num_frames = 0
        self._votes = CategoryVotes(self.model.roi_heads.num_classes, self.categories_per_instance)
        self.reset_association()

    def update(self, frame: Dict) -> List[FrameOutput]:
        """Detect, associate and hand out the frame at once (no delay)."""
        idx = self._num_frames
        self._num_frames += 1
        det = self.model.detect_frame(frame, self.score_thresh, self.topk, self.nms_thresh)
        d = paste_detections(det, frame, self.mask_thresh)
        ids = self.associate(det, d)
        self._votes.add(ids.tolist(), d.classes, d.scores, d.class_probs)
        order = torch.argsort(ids)
        return [FrameOutput(idx, ids[order], d.masks[order])]

    def finish(self) -> List[FrameOutput]:
        return []

    @property
    def votes(self) -> CategoryVotes:
        """One vote per detection."""
        return self._votes
