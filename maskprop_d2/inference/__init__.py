"""Streaming video inference."""
from .video_inference import FrameOutput, VideoInference, VideoInstance

__all__ = ["FrameOutput", "VideoInference", "VideoInstance"]
