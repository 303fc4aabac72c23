"""Video inference on top of the tracker interface: a new tracker plugs into detectron2's
``inference_on_dataset`` through ``VideoInferenceAdapter``, the model's mode is restored, and
``VideoPredictor`` refuses an unknown tracker before reading weights."""

import pytest
import torch
from detectron2.config import configurable
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset

from maskprop_d2.inference import VideoInferenceAdapter, VideoPredictor
from maskprop_d2.tracking import (
    VIDEO_TRACKER_REGISTRY,
    FrameOutput,
    VideoInstance,
    VideoTracker,
)
from tests.video_helpers import drifting_video, tiny_video_model


class _ConstantTracker(VideoTracker):
    """Each frame: one instance (ID 0) covering the top-left quarter; no model needed."""

    name = "test_constant"

    @configurable
    def __init__(self, model=None, *, category: int = 1):
        super().__init__(model)
        self.category = category

    @classmethod
    def from_config(cls, cfg, model):
        return {"model": model, "category": 1}

    def reset(self):
        self.n = 0

    def update(self, frame):
        h, w = frame["height"], frame["width"]
        masks = torch.zeros((1, h, w), dtype=torch.bool)
        masks[0, : h // 2, : w // 2] = True
        self.n += 1
        return [FrameOutput(self.n - 1, torch.tensor([0]), masks)]

    def finish(self):
        return []

    def current_instance(self, instance_id):
        return VideoInstance(0, self.category, 0.5) if instance_id == 0 and self.n else None

    def video_instances(self):
        return [VideoInstance(0, self.category, 0.5)]


if "_ConstantTracker" not in VIDEO_TRACKER_REGISTRY:
    VIDEO_TRACKER_REGISTRY.register(_ConstantTracker)


def test_unknown_tracker_fails_in_the_predictor_before_weights_load(tmp_path):
    cfg, _ = tiny_video_model("MODEL.MASKPROP.INFERENCE.TRACKER", "nope")
    cfg.MODEL.WEIGHTS = str(tmp_path / "never_read.pth")
    with pytest.raises(ValueError, match="registered trackers"):
        VideoPredictor(cfg)


class _Recorder(DatasetEvaluator):
    def reset(self):
        self.seen = []

    def process(self, inputs, outputs):
        self.seen += list(zip(inputs, outputs, strict=True))

    def evaluate(self):
        return {"recorder": {"videos": float(len(self.seen))}}


def _videos(n_videos, length, h=16, w=24):
    return [
        [
            {
                "video_id": v + 1,
                "length": length,
                "frames": [
                    {"image": torch.zeros(3, h, w, dtype=torch.uint8), "height": h, "width": w}
                    for _ in range(length)
                ],
            }
        ]
        for v in range(n_videos)
    ]


def test_a_new_tracker_plugs_into_inference_on_dataset():
    cfg, model = tiny_video_model("MODEL.MASKPROP.INFERENCE.TRACKER", "test_constant")
    adapter = VideoInferenceAdapter.from_config(cfg, model)
    assert isinstance(adapter.tracker, _ConstantTracker)
    ev = _Recorder()
    res = inference_on_dataset(adapter, _videos(2, 3), ev)
    assert res == {"recorder": {"videos": 2.0}}
    for video, entries in ev.seen:
        assert len(entries) == 1
        e = entries[0]
        assert e["category_id"] == 1 and e["score"] == 0.5
        assert len(e["segmentations"]) == video["length"] == 3
        assert all(s["size"] == [16, 24] for s in e["segmentations"])


@pytest.mark.parametrize("tracker", ["maskprop", "frame_linking"])
def test_model_mode_is_restored_after_inference(tracker):
    cfg, model = tiny_video_model("INPUT.CLIP.HALF_LENGTH", 1)
    adapter = VideoInferenceAdapter.from_config(cfg, model, tracker)
    video = {"video_id": 1, "length": 3, "frames": drifting_video(3)}
    for training in (True, False):
        model.train(training)
        (entries,) = adapter([video])
        assert model.training is training
        assert all(len(e["segmentations"]) == 3 for e in entries)
    assert entries, "the tiny model with thresholds at 0 should give some tracks"
