"""Video data: YouTube-VIS loading/validation, registration of built-in and synthetic splits.

Importing this package registers the built-in splits (lazily; nothing is read from disk).
"""

from . import builtin  # noqa: F401  (registers ytvis_2019_*, ytvis_2021_*, ovis_*, synthetic_ytvis_*)
from .build import build_clip_train_loader, build_video_test_loader, get_video_dataset_dicts
from .builtin import (
    OVIS_CATEGORIES,
    YTVIS_2019_CATEGORIES,
    YTVIS_2021_CATEGORIES,
    register_all_ytvis,
    register_synthetic_ytvis,
    synthetic_root,
)
from .clip_mapper import ClipDatasetMapper, VideoFrames, VideoInferenceMapper
from .ytvis import load_ytvis_json, register_ytvis_instances

__all__ = [
    "ClipDatasetMapper",
    "VideoInferenceMapper",
    "VideoFrames",
    "build_clip_train_loader",
    "build_video_test_loader",
    "get_video_dataset_dicts",
    "load_ytvis_json",
    "register_ytvis_instances",
    "register_all_ytvis",
    "register_synthetic_ytvis",
    "synthetic_root",
    "YTVIS_2019_CATEGORIES",
    "YTVIS_2021_CATEGORIES",
    "OVIS_CATEGORIES",
]
