"""MaskTrack R-CNN's tracking branch (Yang et al., ICCV 2019): ROI embeddings matched by softmax.

The head maps each box's pooled ROI feature to an embedding. In training, every positive
proposal of a key frame is classified over the instances of a reference frame of the same video
plus one "new object" entry: the logits are the dot products with the reference instances'
embeddings and a constant 0 for "new", and the loss is the cross-entropy against the reference
instance with the same track ID, or "new" when the object is not in the reference frame.

At inference the same logits, against a memory of the video's instances, enter MaskTrack
R-CNN's combined matching score (:mod:`maskprop_d2.tracking.tracking_head`).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry
from torch import nn

__all__ = [
    "TRACK_HEAD_REGISTRY",
    "TrackEmbeddingHead",
    "build_track_head",
    "match_logits",
    "track_embedding_loss",
]

TRACK_HEAD_REGISTRY = Registry("TRACK_HEAD")
TRACK_HEAD_REGISTRY.__doc__ = """
Registry for tracking heads: (N, C, S, S) pooled ROI features -> (N, D) instance embeddings.
Built with ``cls(cfg, input_shape)`` from ``MODEL.TRACK_HEAD.NAME``.
"""


@TRACK_HEAD_REGISTRY.register()
class TrackEmbeddingHead(nn.Module):
    """Fully connected layers on the flattened ROI feature; the last one's output (no ReLU) is
    the embedding.

    Input: (N, C, S, S) pooled features. Output: (N, D) embeddings, D = ``fc_dims[-1]``.
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, fc_dims):
        """
        Args:
            input_shape: channels, height and width of the pooled ROI feature.
            fc_dims: output sizes of the fully connected layers (at least one).
        """
        super().__init__()
        if not fc_dims:
            raise ValueError("MODEL.TRACK_HEAD.NUM_FC must be >= 1")
        d = input_shape.channels * (input_shape.height or 1) * (input_shape.width or 1)
        layers = []
        for k, out in enumerate(fc_dims):
            fc = nn.Linear(d, out)
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)
            layers.append(fc)
            if k + 1 < len(fc_dims):
                layers.append(nn.ReLU(inplace=True))
            d = out
        self.layers = nn.Sequential(*layers)
        self.embed_dim = d

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        c = cfg.MODEL.TRACK_HEAD
        return {
            "input_shape": input_shape,
            "fc_dims": [c.FC_DIM] * (c.NUM_FC - 1) + [c.EMBED_DIM] if c.NUM_FC >= 1 else [],
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


def build_track_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """The tracking head named by ``MODEL.TRACK_HEAD.NAME``."""
    return TRACK_HEAD_REGISTRY.get(cfg.MODEL.TRACK_HEAD.NAME)(cfg, input_shape)


def match_logits(query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """(n, D) query embeddings, (m, D) memory embeddings -> (n, m + 1) logits: column 0 is the
    "new object" entry (logit 0), column j + 1 the dot product with memory entry j."""
    sims = query @ memory.t()
    return torch.cat([sims.new_zeros((len(query), 1)), sims], dim=1)


def track_embedding_loss(
    key: torch.Tensor, ref: torch.Tensor, targets: torch.Tensor, weight: Optional[float] = 1.0
) -> torch.Tensor:
    """Mean cross-entropy of :func:`match_logits` (key vs reference embeddings).

    Args:
        key: (n, D) embeddings of key-frame boxes.
        ref: (m, D) embeddings of the reference frame's instances.
        targets: (n,) long in [0, m]: 0 "new object", j + 1 reference instance j.
    """
    if len(key) == 0:
        return key.sum() * 0.0 + ref.sum() * 0.0
    return F.cross_entropy(match_logits(key, ref), targets) * weight
