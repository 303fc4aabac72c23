"""The video tracker interface and its registry.

A video tracker turns a stream of frames into per-frame instance masks with video-level IDs, and
at the end of the video into ranked video instances (ID, category, score). Every consumer (the
evaluation adapter :class:`maskprop_d2.inference.VideoInferenceAdapter`, the demo's
:class:`maskprop_d2.inference.VideoPredictor`, the benchmarks) builds its tracker with
:func:`build_video_tracker` from ``MODEL.MASKPROP.INFERENCE.TRACKER`` and drives it only through
this interface, so a new tracker plugs in by registering a subclass with a ``name``::

    @VIDEO_TRACKER_REGISTRY.register()
    class MyTracker(VideoTracker):
        name = "my_tracker"                  # the value of MODEL.MASKPROP.INFERENCE.TRACKER
        heads_interface = DetectionHeads     # what it needs of model.roi_heads (model_interface)

        @configurable
        def __init__(self, model, *, my_thresh=0.5): ...

        @classmethod
        def from_config(cls, cfg, model):
            return {"model": model, "my_thresh": cfg.MODEL.MASKPROP.INFERENCE.MY_THRESH}

        def reset(self): ...
        def update(self, frame): ...       # frames whose output became final, in order
        def finish(self): ...              # the remaining frames, in order
        def current_instance(self, instance_id): ...
        def video_instances(self): ...

and setting ``MODEL.MASKPROP.INFERENCE.TRACKER my_tracker`` (see ``docs/extending.md``). The
registry is detectron2's, keyed by class name as every detectron2 registry; the config value is
the class's ``name`` (:func:`tracker_names`; the class name is accepted too).
"""

from typing import Dict, Iterable, Iterator, List, Optional

import torch
from detectron2.config import configurable
from detectron2.utils.registry import Registry

from .model_interface import check_model
from .outputs import CategoryVotes, FrameOutput, VideoInstance

__all__ = [
    "VIDEO_TRACKER_REGISTRY",
    "VideoTracker",
    "DetectionTracker",
    "build_video_tracker",
    "detection_args",
    "tracker_class",
    "tracker_names",
]

VIDEO_TRACKER_REGISTRY = Registry("VIDEO_TRACKER")
VIDEO_TRACKER_REGISTRY.__doc__ = """
Registry of video trackers (subclasses of :class:`VideoTracker`), keyed by class name; each
class's ``name`` is the value ``MODEL.MASKPROP.INFERENCE.TRACKER`` takes. Each is called as
``cls(cfg, model)``.
"""


class VideoTracker:
    """Base class of the video trackers: frames in, per-frame ID masks and video instances out.

    Input frames are dicts with ``image``: (3, h, w) tensor in the model's input format, and
    optionally ``height``, ``width``: the output size (H, W) (default: the image size).

    Outputs:

    * :class:`FrameOutput`, one per input frame, handed out in frame order, each as soon as it
      is final (a tracker may hold back a bounded number of frames):

      - ``frame_idx``: int, the frame's index in the video (0, 1, ...);
      - ``ids``: (n,) long, the IDs of the n video instances visible in the frame, increasing;
      - ``masks``: (n, H, W) bool, their masks at the frame's output size (none empty).

    * :class:`VideoInstance`, from :meth:`current_instance` (running) and
      :meth:`video_instances` (final, after the last frame):

      - ``id``: int, a video instance ID (IDs are small non-negative ints);
      - ``category_id``: int, contiguous category id in [0, K);
      - ``score``: float in [0, 1].

      :meth:`video_instances` is sorted by decreasing score; an ID may appear once per
      category it is reported with.

    Subclasses are ``@configurable`` (``cls(cfg, model, **overrides)`` or explicit arguments),
    implement :meth:`reset`, :meth:`update`, :meth:`finish`, :meth:`current_instance` and
    :meth:`video_instances`, and keep their memory independent of the video length.
    :meth:`stream` (the loop) is shared.

    Diagnostics: :meth:`state_size` reports the sizes of the streaming state, for the tests and
    benchmarks that check the memory does not grow with the video; inference never calls it.

    Class attributes:
        name: the config name (``MODEL.MASKPROP.INFERENCE.TRACKER``); None: the class name.
        heads_interface: what the tracker needs of ``model.roi_heads``, a protocol of
            :mod:`maskprop_d2.tracking.model_interface` (None: no model, or nothing checked).
        model_hint: how to get a suitable model, added to the error when the model lacks it.

    Attributes:
        model: the detector the tracker runs (None for a tracker without one).
    """

    name: Optional[str] = None
    heads_interface: Optional[type] = None
    model_hint: str = ""

    @configurable
    def __init__(self, model: Optional[torch.nn.Module] = None):
        if model is not None and self.heads_interface is not None:
            check_model(model, self.heads_interface, self.name or type(self).__name__,
                        self.model_hint)
        self.model = model

    @classmethod
    def from_config(cls, cfg, model):
        raise NotImplementedError("{} must implement from_config".format(cls.__name__))

    # ------------------------------------------------------------------ the interface
    def reset(self) -> None:
        """Forget the previous video (called by :meth:`stream` before the first frame)."""
        raise NotImplementedError

    def update(self, frame: Dict) -> Iterable[FrameOutput]:
        """Take the next frame; return the FrameOutputs that became final (possibly none), in
        frame order."""
        raise NotImplementedError

    def finish(self) -> Iterable[FrameOutput]:
        """The video has ended: return the FrameOutputs of the frames not handed out yet."""
        raise NotImplementedError

    def current_instance(self, instance_id: int) -> Optional[VideoInstance]:
        """Category and score of an ID from what was seen so far (None if unknown)."""
        raise NotImplementedError

    def video_instances(self) -> List[VideoInstance]:
        """The video instances of the last streamed video, by decreasing score."""
        raise NotImplementedError

    def state_size(self) -> Dict[str, int]:
        """Diagnostics: sizes of the streaming state (numbers of cached items, by kind), for
        memory checks in tests and benchmarks. Default: none."""
        return {}

    # ------------------------------------------------------------------ the loop
    @torch.no_grad()
    def stream(self, frames: Iterable[Dict]) -> Iterator[FrameOutput]:
        """Yield one FrameOutput per input frame, in order, as soon as it is final.

        Puts the model in eval mode (restoring the mode is the caller's business, e.g. with
        detectron2's ``inference_context``).
        """
        if self.model is not None:
            self.model.eval()
        self.reset()
        for frame in frames:
            yield from self.update(frame)
        yield from self.finish()


class DetectionTracker(VideoTracker):
    """Base of the trackers built on the model's per-frame detections (:class:`PerFrameTracker`,
    :class:`MaskPropTracker`): the detection settings, and the video instances read from the
    category votes of the IDs (:attr:`votes`, which the subclass provides).

    Subclasses set their own attributes and call :meth:`reset` after ``super().__init__``.
    """

    @configurable
    def __init__(
        self,
        model,
        *,
        score_thresh: float = 0.3,
        topk_per_frame: int = 10,
        nms_thresh: float = 1.0,
        mask_thresh: float = 0.5,
        max_instances: int = 100,
        categories_per_instance: int = 1,
    ):
        """
        Args:
            model: a :class:`maskprop_d2.modeling.MaskProp` or a model with the same detection
                interface (:mod:`maskprop_d2.tracking.model_interface`).
            score_thresh, topk_per_frame, nms_thresh: which detections of a frame are kept (see
                :meth:`maskprop_d2.modeling.MaskProp.detect_frame`).
            mask_thresh: threshold on the soft masks handed out.
            max_instances: at most this many video instances are reported (by score).
            categories_per_instance: each video instance is reported with up to this many
                categories (see :class:`CategoryVotes`).
        """
        super().__init__(model)
        self.score_thresh = score_thresh
        self.topk = topk_per_frame
        self.nms_thresh = nms_thresh
        self.mask_thresh = mask_thresh
        self.max_instances = max_instances
        self.categories_per_instance = categories_per_instance

    @classmethod
    def from_config(cls, cfg, model):
        return {"model": model, **detection_args(cfg)}

    @property
    def votes(self) -> CategoryVotes:
        """The category votes of the current video's IDs."""
        raise NotImplementedError

    def current_instance(self, instance_id: int) -> Optional[VideoInstance]:
        """Category and score of an ID from the detections seen so far (None if unknown)."""
        return self.votes.get(instance_id)

    def video_instances(self) -> List[VideoInstance]:
        """All video instances of the last streamed video, by decreasing score (at most
        ``max_instances``); see :class:`CategoryVotes`."""
        return self.votes.ranked(self.max_instances)


def detection_args(cfg) -> Dict:
    """The config-derived arguments shared by the detection-based trackers: which detections of
    a frame are kept (``score_thresh``, ``topk_per_frame``, ``nms_thresh``), ``mask_thresh``,
    ``max_instances`` and ``categories_per_instance``."""
    c = cfg.MODEL.MASKPROP.INFERENCE
    return {
        "score_thresh": c.SCORE_THRESH,
        "topk_per_frame": c.TOPK_PER_FRAME,
        "nms_thresh": c.NMS_THRESH,
        "mask_thresh": c.MASK_THRESH,
        "max_instances": cfg.TEST.DETECTIONS_PER_VIDEO,
        "categories_per_instance": c.CATEGORIES_PER_INSTANCE,
    }


def _trackers_by_name() -> Dict[str, type]:
    """{config name: class} of the registered trackers."""
    by_name: Dict[str, type] = {}
    for key, cls in VIDEO_TRACKER_REGISTRY:
        name = getattr(cls, "name", None) or key
        if name in by_name:
            raise ValueError(
                "two registered trackers are named {!r}: {} and {}".format(
                    name, by_name[name].__name__, cls.__name__
                )
            )
        by_name[name] = cls
    return by_name


def tracker_names() -> List[str]:
    """The values ``MODEL.MASKPROP.INFERENCE.TRACKER`` takes: the registered trackers' names,
    sorted."""
    return sorted(_trackers_by_name())


def tracker_class(name: str) -> type:
    """The registered tracker class of config name (or class name) ``name``.

    Raises:
        ValueError: no such tracker (the message lists the registered names).
    """
    by_name = _trackers_by_name()
    if name in by_name:
        return by_name[name]
    if name in VIDEO_TRACKER_REGISTRY:
        return VIDEO_TRACKER_REGISTRY.get(name)
    raise ValueError(
        "unknown tracker {!r} (MODEL.MASKPROP.INFERENCE.TRACKER); registered trackers: "
        "{}".format(name, ", ".join(sorted(by_name)))
    )


def build_video_tracker(cfg, model, name: Optional[str] = None, **kwargs) -> VideoTracker:
    """The tracker ``name`` (default: ``cfg.MODEL.MASKPROP.INFERENCE.TRACKER``) built from
    ``cfg`` for ``model``; ``kwargs`` override its config-derived arguments.

    Raises:
        ValueError: the name is not registered (the message lists the registered names), or the
            model lacks what the tracker needs (the message names it).
    """
    return tracker_class(name or cfg.MODEL.MASKPROP.INFERENCE.TRACKER)(cfg, model, **kwargs)
