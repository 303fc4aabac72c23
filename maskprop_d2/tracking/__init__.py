"""Video trackers: one interface (:class:`VideoTracker`), a registry, and its implementations.

* ``"maskprop"`` (:class:`MaskPropTracker`): MaskProp's clip-level tracks, propagated by the
  model's propagation head and matched clip by clip (:class:`ClipTrackMatcher`);
* ``"flow_propagation"`` (:class:`FlowPropagationTracker`): the same clip tracks and ID
  assignment, with masks warped by OpenCV dense optical flow instead of the propagation head;
* ``"tracking_head"`` (:class:`TrackingHeadTracker`): MaskTrack R-CNN's association of
  per-frame detections by a learned embedding (:class:`EmbeddingMemory`); needs a model with
  a tracking head;
* ``"frame_linking"`` (:class:`FrameLinkingTracker`): the per-frame baseline, detections linked
  to the previous frame's by mask IoU (:class:`FrameLinker`).

``build_video_tracker(cfg, model)`` builds the one named by ``MODEL.MASKPROP.INFERENCE.TRACKER``.
All four take their detection settings and report their video instances through
:class:`DetectionTracker`; the per-frame trackers share :class:`PerFrameTracker`, and what each
tracker needs of the model is declared in :mod:`maskprop_d2.tracking.model_interface`.
The model-free parts (:class:`ClipTrackMatcher`, :class:`ClipTrackAggregator`,
:class:`FrameLinker`, :class:`CategoryVotes`) work on plain tensors.
"""

from .base import (
    VIDEO_TRACKER_REGISTRY,
    DetectionTracker,
    VideoTracker,
    build_video_tracker,
    detection_args,
    tracker_class,
    tracker_names,
)
from .clip_tracks import ClipTrackAggregator, FrameGeometry
from .flow_propagation import FlowPropagationTracker, optical_flow, warp_masks
from .frame_linking import FrameLinker, FrameLinkingTracker, link_by_iou
from .id_assignment import ClipTrackMatcher, assign_ids_from_scores, clip_frame_range
from .maskprop import MaskPropTracker
from .model_interface import (
    DetectionHeads,
    DetectionModel,
    EmbeddingHeads,
    PropagationGrid,
    PropagationHeads,
    check_model,
)
from .outputs import CategoryVotes, FrameOutput, IdAllocator, VideoInstance
from .per_frame import PerFrameTracker
from .tracking_head import EmbeddingMemory, TrackingHeadTracker

__all__ = [
    "VIDEO_TRACKER_REGISTRY",
    "VideoTracker",
    "build_video_tracker",
    "detection_args",
    "tracker_class",
    "tracker_names",
    "DetectionTracker",
    "PerFrameTracker",
    "DetectionModel",
    "DetectionHeads",
    "PropagationGrid",
    "PropagationHeads",
    "EmbeddingHeads",
    "check_model",
    "IdAllocator",
    "MaskPropTracker",
    "FrameLinkingTracker",
    "FlowPropagationTracker",
    "TrackingHeadTracker",
    "EmbeddingMemory",
    "optical_flow",
    "warp_masks",
    "FrameLinker",
    "link_by_iou",
    "ClipTrackAggregator",
    "FrameGeometry",
    "ClipTrackMatcher",
    "assign_ids_from_scores",
    "clip_frame_range",
    "CategoryVotes",
    "FrameOutput",
    "VideoInstance",
]
