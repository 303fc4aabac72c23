"""VideoPredictor: raw frames in, tracked instance masks out, streaming (for demos and tools)."""

import collections
from typing import Iterable, Iterator, Tuple

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import convert_image_to_rgb
from detectron2.modeling import build_model

from ..checkpoint import load_inference_weights
from ..tracking import FrameOutput, build_video_tracker
from ..utils.onednn import limit_primitive_cache
from .config_check import check_inference_config

__all__ = ["VideoPredictor"]


class VideoPredictor:
    """Build MaskProp from a config, load its weights, and run its tracker over a stream of
    frames. The tracker is ``MODEL.MASKPROP.INFERENCE.TRACKER`` (any registered one; an unknown
    name is a ``ValueError`` listing the registered ones).

    Frames are BGR uint8 arrays (H, W, 3) as OpenCV reads them; each is resized with the test-time
    shortest-edge resize. ``__call__`` yields ``(frame, FrameOutput)`` pairs in order; it keeps
    at most the frames whose output is not final yet (2T + 1 for MaskProp), never the whole video.

    The config is checked first (``check_inference_config``); ``MODEL.WEIGHTS`` is loaded safely
    and must initialise every parameter of the model (``IncompleteWeightsError`` otherwise).
    """

    def __init__(self, cfg):
        check_inference_config(cfg)  # tracker name, thresholds, counts: before the model
        limit_primitive_cache()  # before the first convolution: memory flat over long videos
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        self.tracker = build_video_tracker(self.cfg, self.model)  # an unknown name fails here
        load_inference_weights(self.model, cfg.MODEL.WEIGHTS)  # incomplete weights: an error
        names = cfg.DATASETS.TEST or cfg.DATASETS.TRAIN
        self.metadata = MetadataCatalog.get(names[0]) if names else None
        self.aug = T.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        self.input_format = cfg.INPUT.FORMAT

    def _to_input(self, frame_bgr: np.ndarray) -> dict:
        if self.input_format == "RGB":
            img = frame_bgr[:, :, ::-1]
        elif self.input_format == "BGR":
            img = frame_bgr
        else:
            img = convert_image_to_rgb(frame_bgr[:, :, ::-1], self.input_format)
        h, w = img.shape[:2]
        img = self.aug.get_transform(img).apply_image(img)
        tensor = torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return {"image": tensor, "height": h, "width": w}

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[Tuple[np.ndarray, FrameOutput]]:
        pending = collections.deque()

        def inputs():
            for f in frames:
                pending.append(f)
                yield self._to_input(f)

        for out in self.tracker.stream(inputs()):
            yield pending.popleft(), out

    def instance_label(self, instance_id: int):
        """Running (category id, score) of an instance; final after the stream ends."""
        return self.tracker.current_instance(instance_id)

    def video_instances(self):
        return self.tracker.video_instances()
