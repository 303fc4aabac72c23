"""What video inference hands out: per-frame masks, video instances and their category votes."""

from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional

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
    sum divided by the ID's number of tracks (tracks of another class count as 0).
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self._sum: Dict[int, torch.Tensor] = {}
        self._count: Dict[int, int] = defaultdict(int)

    def add(self, ids: List[int], classes: torch.Tensor, scores: torch.Tensor) -> None:
        """One vote per track: ``ids[i]`` saw class ``classes[i]`` with ``scores[i]``."""
        onehot = F.one_hot(classes.long().cpu(), self.num_classes).float()
        onehot *= scores.float().cpu()[:, None]
        for row, y in enumerate(ids):
            if y not in self._sum:
                self._sum[y] = torch.zeros(self.num_classes)
            self._sum[y] += onehot[row]
            self._count[y] += 1

    def get(self, instance_id: int) -> Optional[VideoInstance]:
        """The ID's current category and score, None if it has no vote."""
        cs = self._sum.get(instance_id)
        if cs is None:
            return None
        cat = int(cs.argmax())
        return VideoInstance(instance_id, cat, float(cs[cat]) / self._count[instance_id])

    def ranked_all(self) -> List[VideoInstance]:
        """All IDs by decreasing score."""
        return self.ranked(len(self._sum))

    def ranked(self, max_instances: int) -> List[VideoInstance]:
        """All IDs by decreasing score, at most ``max_instances``."""
        out = [self.get(y) for y in self._sum]
        out.sort(key=lambda v: -v.score)
        return out[:max_instances]
