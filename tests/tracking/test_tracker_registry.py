"""The tracker interface: registry, build from the config, build errors (a new tracker plugging
into detectron2's loop: tests/inference/test_video_inference.py)."""

import pytest
import torch

from maskprop_d2.inference import VideoInferenceAdapter
from maskprop_d2.tracking import (
    VIDEO_TRACKER_REGISTRY,
    FrameLinkingTracker,
    MaskPropTracker,
    VideoTracker,
    build_video_tracker,
    tracker_class,
    tracker_names,
)
from tests.video_helpers import drifting_video, tiny_video_model


def test_registry_holds_the_trackers_by_class_name_and_config_name():
    # detectron2's registry, keyed by class name; the config value is the class's ``name``
    assert VIDEO_TRACKER_REGISTRY.get("MaskPropTracker") is MaskPropTracker
    assert tracker_class("maskprop") is MaskPropTracker
    assert tracker_class("frame_linking") is tracker_class("FrameLinkingTracker")
    assert issubclass(FrameLinkingTracker, VideoTracker)
    assert {"maskprop", "flow_propagation", "tracking_head", "frame_linking"} <= set(
        tracker_names()
    )


def test_a_model_without_what_the_tracker_needs_is_named_at_build_time():
    cfg, model = tiny_video_model()
    heads = model.roi_heads
    model.roi_heads = torch.nn.Module()  # no num_classes, no propagation head
    try:
        with pytest.raises(ValueError, match=r"'maskprop' tracker needs .*roi_heads\.num_classes"
                           r".*roi_heads\.propagate"):
            build_video_tracker(cfg, model, "maskprop")
        with pytest.raises(ValueError, match=r"'frame_linking' tracker needs .*num_classes"):
            build_video_tracker(cfg, model, "frame_linking")
    finally:
        model.roi_heads = heads


def test_build_from_config_and_overrides():
    cfg, model = tiny_video_model("INPUT.CLIP.HALF_LENGTH", 1)
    t = build_video_tracker(cfg, model)  # default TRACKER: maskprop
    assert isinstance(t, MaskPropTracker) and t.T == 1 and t.model is model
    fl = build_video_tracker(cfg, model, "frame_linking", max_gap=3)
    assert isinstance(fl, FrameLinkingTracker) and fl.max_gap == 3


def test_unknown_tracker_is_a_clear_error_listing_the_registered_ones():
    cfg, model = tiny_video_model("MODEL.MASKPROP.INFERENCE.TRACKER", "nope")
    with pytest.raises(ValueError, match=r"unknown tracker 'nope'.*frame_linking, maskprop"):
        build_video_tracker(cfg, model)
    with pytest.raises(ValueError, match="unknown tracker 'nope'"):
        VideoInferenceAdapter.from_config(cfg, model)  # what Trainer.test / the evaluator uses


def test_detect_frame_refuses_training_mode(tiny_model_copy):
    _, model = tiny_model_copy
    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        model.detect_frame(drifting_video(1)[0], 0.0, 10)
