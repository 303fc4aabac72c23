"""Streaming video inference."""

from .clip_tracks import ClipTrackAggregator, FrameGeometry
from .predictor import VideoPredictor
from .video_inference import FrameOutput, VideoInference, VideoInstance
from .video_results import collect_video_results, encode_frame_masks


def build_video_inference(cfg, model, tracker=None):
    """The video inference of ``MODEL.MASKPROP.INFERENCE.TRACKER`` (or ``tracker``)."""
    tracker = tracker or cfg.MODEL.MASKPROP.INFERENCE.TRACKER
    if tracker == "maskprop":
        return VideoInference(cfg, model)
    if tracker == "frame_linking":
        from .frame_linking import FrameLinkingInference

        return FrameLinkingInference(cfg, model)
    raise ValueError(
        "MODEL.MASKPROP.INFERENCE.TRACKER must be 'maskprop' or 'frame_linking', got {!r}".format(
            tracker
        )
    )


__all__ = [
    "ClipTrackAggregator",
    "FrameGeometry",
    "FrameOutput",
    "VideoInference",
    "VideoInstance",
    "VideoPredictor",
    "build_video_inference",
    "collect_video_results",
    "encode_frame_masks",
]
