"""MaskProp model components; importing this module registers them with detectron2."""

from ..utils.masks import pairwise_soft_iou, soft_iou
from .backbone import build_basic_resnet_fpn_backbone
from .meta_arch import MaskProp, MaskTrackRCNN
from .propagation import ROI_MASK_PROP_HEAD_REGISTRY, MaskPropagationHead, build_mask_prop_head
from .roi_heads import MaskPropROIHeads, MaskTrackROIHeads
from .track_head import TRACK_HEAD_REGISTRY, TrackEmbeddingHead, build_track_head

__all__ = [
    "build_basic_resnet_fpn_backbone",
    "MaskProp",
    "MaskPropROIHeads",
    "MaskTrackRCNN",
    "MaskTrackROIHeads",
    "TrackEmbeddingHead",
    "TRACK_HEAD_REGISTRY",
    "build_track_head",
    "MaskPropagationHead",
    "ROI_MASK_PROP_HEAD_REGISTRY",
    "build_mask_prop_head",
    "soft_iou",
    "pairwise_soft_iou",
]
