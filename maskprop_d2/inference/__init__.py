"""Video inference on top of the trackers: detectron2's evaluation loop and the demo predictor.

* :class:`VideoInferenceAdapter`: the callable ``inference_on_dataset`` drives (video record in,
  result entries out);
* :class:`VideoPredictor`: raw frames in, tracked masks out (demos, tools);
* :func:`check_inference_config`: the config values inference needs, checked up front;
* :func:`collect_video_results` / :class:`VideoResultsCollector`: FrameOutputs -> result entries.
"""

from .config_check import check_inference_config
from .predictor import VideoPredictor
from .video_inference import VideoInferenceAdapter
from .video_results import VideoResultsCollector, collect_video_results, encode_frame_masks

__all__ = [
    "VideoInferenceAdapter",
    "check_inference_config",
    "VideoPredictor",
    "VideoResultsCollector",
    "collect_video_results",
    "encode_frame_masks",
]
