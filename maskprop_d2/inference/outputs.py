"""What video inference hands out: per-frame masks, video instances and their category votes."""

from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F

__all__ = ["FrameOutput", "VideoInstance", "CategoryVotes"]


@dataclass
class FrameOutput:
    """Final result of one frame.

    Attributes:
        frame_idx: index of the frame in the video.
        ids: (n,) long, video instance IDs visible in the frame.
        masks: (n, H, W) bool masks at the frame's output size (``height``, ``width``).
    """

    frame_idx: int
    ids: torch.Tensor
    masks: torch.Tensor


@dataclass
class VideoInstance:
    """A video-level instance: ID, contiguous category and score (from its tracks' detections)."""

    id: int
    category_id: int
    score: float


class CategoryVotes:
    """Category and score of each video ID from the detections of its tracks.

    Category: the class with the largest summed detection score over the ID's tracks; score: that
    sum divided by the ID's number of tracks (tracks of another class count as 0). IDs are small
    non-negative ints (both trackers number them consecutively); the votes live in one (Y, C)
    table updated with ``index_add_``.
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self._sum = torch.zeros((0, num_classes))  # (Y, C) summed scores per ID and class
        self._count = torch.zeros(0)  # (Y,) number of votes per ID

    def add(self, ids: List[int], classes: torch.Tensor, scores: torch.Tensor) -> None:
        """One vote per track: ``ids[i]`` saw class ``classes[i]`` with ``scores[i]``."""
        if len(ids) == 0:
            return
        idx = torch.as_tensor(ids, dtype=torch.long)
        if int(idx.min()) < 0:
            raise ValueError("video instance IDs must be >= 0, got {}".format(ids))
        grow = int(idx.max()) + 1 - len(self._count)
        if grow > 0:
            self._sum = torch.cat([self._sum, self._sum.new_zeros((grow, self.num_classes))])
            self._count = torch.cat([self._count, self._count.new_zeros(grow)])
        onehot = F.one_hot(classes.long().cpu(), self.num_classes).float()
        self._sum.index_add_(0, idx, onehot * scores.float().cpu()[:, None])
        self._count.index_add_(0, idx, torch.ones(len(idx)))

    def _table(self):
        """(ids, categories, scores) of every ID with a vote."""
        ids = torch.nonzero(self._count > 0)[:, 0]
        best, cats = self._sum[ids].max(dim=1)
        return ids, cats, best / self._count[ids]

    def get(self, instance_id: int) -> Optional[VideoInstance]:
        """The ID's current category and score, None if it has no vote."""
        if not 0 <= instance_id < len(self._count) or self._count[instance_id] == 0:
            return None
        best, cat = self._sum[instance_id].max(dim=0)
        return VideoInstance(instance_id, int(cat), float(best / self._count[instance_id]))

    def ranked_all(self) -> List[VideoInstance]:
        """All IDs by decreasing score."""
        return self.ranked(len(self._count))

    def ranked(self, max_instances: int) -> List[VideoInstance]:
        """All IDs by decreasing score (ties: lower ID first), at most ``max_instances``."""
        ids, cats, scores = self._table()
        order = torch.sort(scores, descending=True, stable=True).indices[:max_instances]
        return [
            VideoInstance(int(i), int(c), float(v))
            for i, c, v in zip(
                ids[order].tolist(), cats[order].tolist(), scores[order].tolist(), strict=True
            )
        ]
