"""Streaming video inference."""
from .predictor import VideoPredictor
from .video_inference import FrameOutput, VideoInference, VideoInstance
from .video_results import collect_video_results, encode_frame_masks

__all__ = [
    "FrameOutput",
    "VideoInference",
    "VideoInstance",
    "VideoPredictor",
    "collect_video_results",
    "encode_frame_masks",
]
