"""Video inference as detectron2 runs inference: a callable that ``inference_on_dataset`` drives.

:class:`VideoInferenceAdapter` takes what the video test loader yields (a list of one video dict
with lazily read ``frames``) and returns one list of result entries per video, so that detectron2's
own loop (``inference_on_dataset``, hence ``DefaultTrainer.test``) runs a video dataset through any
registered tracker and any ``DatasetEvaluator``::

    adapter = VideoInferenceAdapter.from_config(cfg, model)   # tracker from the config
    results = inference_on_dataset(adapter, build_video_test_loader(cfg, name), evaluator)

Inside, frames are streamed through the tracker: one backbone pass per frame, memory bounded by
the tracker's window, never the whole video.
"""

from contextlib import nullcontext
from typing import Dict, List, Optional

import torch
from detectron2.evaluation import inference_context
from torch import nn

from ..tracking import VideoTracker, build_video_tracker
from ..utils.onednn import limit_primitive_cache
from .video_results import collect_video_results

__all__ = ["VideoInferenceAdapter"]


class VideoInferenceAdapter:
    """A video record in, its result entries out (see module docstring).

    ``adapter(inputs)``: ``inputs`` is a list of video dicts with ``frames`` (an iterable of frame
    dicts with ``image``, ``height``, ``width``) and ``length``; returns, per video, a list of
    ``{"category_id" (contiguous), "score", "segmentations": [RLE | None] * length}``, the input
    of :class:`maskprop_d2.evaluation.YTVISEvaluator`. The tracker's model is in eval mode during
    the call and gets its previous mode back afterwards (detectron2's ``inference_context``).
    """

    def __init__(self, tracker: VideoTracker):
        self.tracker = tracker

    @classmethod
    def from_config(cls, cfg, model, tracker: Optional[str] = None) -> "VideoInferenceAdapter":
        """The adapter around ``build_video_tracker(cfg, model, tracker)`` (default: the tracker
        of ``MODEL.MASKPROP.INFERENCE.TRACKER``). A (Distributed)DataParallel model is
        unwrapped: the trackers call the model's own methods."""
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        limit_primitive_cache()  # effective when no convolution has run yet (--eval-only)
        return cls(build_video_tracker(cfg, model, tracker))

    def __call__(self, inputs: List[Dict]) -> List[List[dict]]:
        model = self.tracker.model
        mode = inference_context(model) if isinstance(model, nn.Module) else nullcontext()
        with mode, torch.no_grad():
            return [self._run(video) for video in inputs]

    def _run(self, video: Dict) -> List[dict]:
        stream = self.tracker.stream(video["frames"])
        return collect_video_results(stream, self.tracker.video_instances, int(video["length"]))
