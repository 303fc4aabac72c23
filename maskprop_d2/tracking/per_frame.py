"""The shared part of the per-frame trackers: detect every frame, give its detections IDs, hand
the frame out at once.

:class:`PerFrameTracker` holds what the per-frame trackers (``frame_linking``,
``tracking_head``) share: the detection settings, the frame loop (detect, paste at the output
size, associate, vote, output), the category votes and the video instances. A subclass supplies
only its association rule: :meth:`PerFrameTracker.reset_association` and
:meth:`PerFrameTracker.associate`.
"""

from typing import Dict, List, Optional

import torch
from detectron2.config import configurable

from ..modeling.meta_arch import FrameDetections
from .base import VideoTracker, detection_args
from .frame_detections import PastedDetections, paste_detections
from .model_interface import DetectionHeads
from .outputs import CategoryVotes, FrameOutput, VideoInstance

__all__ = ["PerFrameTracker"]


class PerFrameTracker(VideoTracker):
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
    def __init__(
        self,
        model,
        *,
        score_thresh: float = 0.3,
        topk_per_frame: int = 10,
        nms_thresh: float = 1.0,
        mask_thresh: float = 0.5,
        max_instances: int = 100,
        categories_per_instance: int = 1,
    ):
        """
        Args:
            model: a :class:`maskprop_d2.modeling.MaskProp` (only its Mask R-CNN part is used).
            score_thresh, topk_per_frame, nms_thresh: which detections of a frame are kept (see
                :meth:`maskprop_d2.modeling.MaskProp.detect_frame`).
            mask_thresh: threshold on the pasted soft masks.
            max_instances: at most this many video instances are reported (by score).
            categories_per_instance: each video instance is reported with up to this many
                categories (see :class:`CategoryVotes`).
        """
        super().__init__(model)
        self.score_thresh = score_thresh
        self.topk = topk_per_frame
        self.nms_thresh = nms_thresh
        self.mask_thresh = mask_thresh
        self.max_instances = max_instances
        self.categories_per_instance = categories_per_instance
        self.reset()

    @classmethod
    def from_config(cls, cfg, model):
        return {"model": model, **detection_args(cfg)}

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

    def current_instance(self, instance_id: int) -> Optional[VideoInstance]:
        """Category and score of an ID from the detections seen so far (None if unknown)."""
        return self._votes.get(instance_id)

    def video_instances(self) -> List[VideoInstance]:
        """All video instances of the last streamed video, by decreasing score (at most
        ``max_instances``); see :class:`CategoryVotes` (one vote per detection)."""
        return self._votes.ranked(self.max_instances)
