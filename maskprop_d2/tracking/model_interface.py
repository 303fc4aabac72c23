"""What the trackers need of a model, declared in one place.

Every detection-based tracker calls :class:`DetectionModel`'s ``detect_frame`` and reads its
``roi_heads``; each tracker names, as its ``heads_interface``, what else it needs of the ROI heads:

* ``maskprop``: :class:`PropagationHeads`; with ``FINE_CROPS`` also :class:`FinePropagationHeads`
  (both :class:`maskprop_d2.modeling.MaskPropROIHeads`);
* ``flow_propagation``: :class:`PropagationGrid` (:class:`maskprop_d2.modeling.MaskPropROIHeads`);
* ``frame_linking``: :class:`DetectionHeads` (any of these heads);
* ``tracking_head``: :class:`EmbeddingHeads` (:class:`maskprop_d2.modeling.MaskTrackROIHeads`);
* the re-identification memory of ``maskprop`` / ``flow_propagation`` (``REID.ENABLED``):
  :class:`EmbeddingHeads` (``REID.EMBEDDING: track_head``) or :class:`BoxFeatureHeads`
  (``box_features``: detectron2's ``StandardROIHeads`` has them).

A model of another architecture works with a tracker as long as it has these attributes.
:class:`maskprop_d2.tracking.VideoTracker` checks them when the tracker is built
(:func:`check_model`), so a missing one is a ``ValueError`` that names it, not an
``AttributeError`` in the middle of a video.
"""

from typing import Dict, List, Protocol

import torch
from detectron2.structures import Boxes

from ..modeling.meta_arch import FrameDetections

__all__ = [
    "DetectionModel",
    "DetectionHeads",
    "PropagationGrid",
    "PropagationHeads",
    "FinePropagationHeads",
    "BoxFeatureHeads",
    "EmbeddingHeads",
    "required_attributes",
    "check_model",
]


class DetectionHeads(Protocol):
    """What every tracker reads of ``model.roi_heads``."""

    num_classes: int  # K: contiguous category ids are in [0, K)


class DetectionModel(Protocol):
    """What every detection-based tracker calls on the model (:class:`maskprop_d2.modeling.MaskProp`
    and its subclasses)."""

    roi_heads: DetectionHeads

    def detect_frame(
        self, frame: Dict, score_thresh: float, topk: int, nms_thresh: float = 1.0
    ) -> FrameDetections:
        """One backbone pass and the frame's detections (score >= ``score_thresh``, cross-class
        NMS at ``nms_thresh``, at most ``topk``) with their masks; eval mode only."""


class PropagationGrid(DetectionHeads, Protocol):
    """The grid masks are propagated on: a backbone feature map and its stride."""

    mask_prop_in_feature: str  # the backbone feature the propagation works on, e.g. "p3"
    mask_prop_stride: int  # its stride s in input pixels: the grid is (ceil(h/s), ceil(w/s))


class PropagationHeads(PropagationGrid, Protocol):
    """MaskProp's propagation head, called by :class:`maskprop_d2.tracking.MaskPropTracker`."""

    def reduce_prop_features(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Backbone features (name -> (F, C, H', W')) -> (F, D, H', W') propagation features,
        computed once per frame and kept while a clip needs them."""

    def propagate(
        self,
        f_src: torch.Tensor,
        f_dst: torch.Tensor,
        masks: torch.Tensor,
        pair_index: torch.Tensor,
    ) -> torch.Tensor:
        """(P, D, H', W') source and target features of P frame pairs, (N, H', W') source masks
        and their (N,) pair index -> (N, H', W') mask logits in the target frames."""


class FinePropagationHeads(PropagationHeads, Protocol):
    """Propagation at the head's crop resolution (``MODEL.ROI_MASK_PROP_HEAD.FINE_CROPS``), used by
    :class:`maskprop_d2.tracking.MaskPropTracker` when ``fine_crops`` is True."""

    fine_crops: bool  # propagate on the head's S×S crops instead of the grid
    mask_prop_head: torch.nn.Module  # with ``roi_size`` (S) and ``paste(crops, windows, hw)``

    def prop_windows(self, boxes: torch.Tensor, feat_hw) -> torch.Tensor:
        """(N, 4) source boxes XYXY in input pixels -> (N, 4) windows in grid cells."""

    def propagate_crops(
        self,
        f_src: torch.Tensor,
        f_dst: torch.Tensor,
        src_crops: torch.Tensor,
        windows: torch.Tensor,
        pair_index: torch.Tensor,
    ) -> torch.Tensor:
        """(P, D, H', W') pair features, (N, S, S) source masks on their (N, 4) windows and the
        (N,) pair index -> (N, S, S) mask logits on the windows in the target frames."""


class BoxFeatureHeads(DetectionHeads, Protocol):
    """The box branch's features of given boxes: the appearance embedding of the
    re-identification memory without a tracking head (``REID.EMBEDDING: box_features``)."""

    box_in_features: List[str]
    box_pooler: torch.nn.Module  # detectron2's ROIPooler
    box_head: torch.nn.Module  # pooled features -> (N, FC_DIM)


class EmbeddingHeads(DetectionHeads, Protocol):
    """MaskTrack R-CNN's tracking head, called by
    :class:`maskprop_d2.tracking.TrackingHeadTracker`."""

    def embed(self, features: Dict[str, torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        """(N, D) embeddings of the boxes of every image (backbone features, B Boxes)."""


def required_attributes(interface: type) -> List[str]:
    """The names an object must have to satisfy ``interface`` (one of the protocols above, or a
    protocol derived from them): its annotated attributes and its methods, base protocols'
    first."""
    names: List[str] = []
    for cls in reversed(interface.__mro__):
        if cls is object or not getattr(cls, "_is_protocol", False) or cls is Protocol:
            continue
        own = list(getattr(cls, "__annotations__", {}))
        own += [k for k, v in vars(cls).items() if callable(v) and not k.startswith("_")]
        names += [n for n in own if n not in names]
    return names


def check_model(model, heads_interface: type, tracker: str, hint: str = "") -> None:
    """Raise a ``ValueError`` naming what ``model`` lacks of :class:`DetectionModel` and of
    ``heads_interface`` (for ``model.roi_heads``).

    Args:
        tracker: the tracker's name, for the message.
        hint: appended to the message (e.g. which config gives such a model).
    """
    missing = ["model." + n for n in ("detect_frame", "roi_heads") if not hasattr(model, n)]
    heads = getattr(model, "roi_heads", None)
    if heads is not None:
        missing += [
            "model.roi_heads." + n
            for n in required_attributes(heads_interface)
            if not hasattr(heads, n)
        ]
    if missing:
        raise ValueError(
            "the {!r} tracker needs a model with {} (see maskprop_d2/tracking/"
            "model_interface.py), got {} with ROI heads {}{}".format(
                tracker,
                ", ".join(missing),
                type(model).__name__,
                type(heads).__name__,
                "; " + hint if hint else "",
            )
        )
