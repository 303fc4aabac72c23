"""What video inference hands out: per-frame masks, video instances and their category votes."""

from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F

__all__ = ["FrameOutput", "VideoInstance", "CategoryVotes", "IdAllocator"]


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


class IdAllocator:
    """Hands out video instance IDs: consecutive ints from ``first_id``, in the order asked for."""

    def __init__(self, first_id: int = 0):
        self.first_id = int(first_id)
        self.reset()

    def reset(self) -> None:
        self._next_id = self.first_id

    @property
    def num_ids(self) -> int:
        """Number of IDs handed out since the last reset."""
        return self._next_id - self.first_id

    def fill(self, ids: torch.Tensor) -> torch.Tensor:
        """Give each entry of ``ids`` (n,) long that is -1 (a new instance) a new ID, in row
        order, in place; returns the (n,) bool mask of the new entries."""
        new = ids < 0
        k = int(new.sum())
        ids[new] = torch.arange(self._next_id, self._next_id + k, dtype=ids.dtype)
        self._next_id += k
        return new


class CategoryVotes:
    """Categories and scores of each video ID from the detections of its tracks.

    Each track casts one vote: the (C,) class-probability vector of its detection (the box
    head's softmax without background), or, where that is not available, a one-hot vector
    scaled by the detection score. An ID's score for class c is the mean of its votes' entry c
    (the mean class probability). The ID is reported with its ``categories_per_instance`` best
    classes (zero scores skipped), each as its own result entry with the same masks: AP is
    computed per category, so a confusable object also scores under its second-best class.
    IDs are small non-negative ints (the trackers number them consecutively); the votes live in
    one (Y, C) table updated with ``index_add_``.
    """

    def __init__(self, num_classes: int, categories_per_instance: int = 1):
        if categories_per_instance < 1:
            raise ValueError(
                "categories_per_instance must be >= 1, got {}".format(categories_per_instance)
            )
        self.num_classes = num_classes
        self.categories_per_instance = min(int(categories_per_instance), num_classes)
        self._sum = torch.zeros((0, num_classes))  # (Y, C) summed votes per ID and class
        self._count = torch.zeros(0)  # (Y,) number of votes per ID

    def add(
        self,
        ids: List[int],
        classes: torch.Tensor,
        scores: torch.Tensor,
        class_probs: Optional[torch.Tensor] = None,
    ) -> None:
        """One vote per track: ``ids[i]`` saw class ``classes[i]`` with ``scores[i]``;
        ``class_probs`` (N, C), when given, is the vote instead."""
        if len(ids) == 0:
            return
        idx = torch.as_tensor(ids, dtype=torch.long)
        if int(idx.min()) < 0:
            raise ValueError("video instance IDs must be >= 0, got {}".format(ids))
        grow = int(idx.max()) + 1 - len(self._count)
        if grow > 0:
            self._sum = torch.cat([self._sum, self._sum.new_zeros((grow, self.num_classes))])
            self._count = torch.cat([self._count, self._count.new_zeros(grow)])
        if class_probs is not None:
            if tuple(class_probs.shape) != (len(idx), self.num_classes):
                raise ValueError(
                    "class_probs must be ({}, {}), got {}".format(
                        len(idx), self.num_classes, tuple(class_probs.shape)
                    )
                )
            votes = class_probs.float().cpu()
        else:
            votes = F.one_hot(classes.long().cpu(), self.num_classes).float()
            votes = votes * scores.float().cpu()[:, None]
        self._sum.index_add_(0, idx, votes)
        self._count.index_add_(0, idx, torch.ones(len(idx)))

    def get(self, instance_id: int) -> Optional[VideoInstance]:
        """The ID's current best category and its score, None if it has no vote."""
        if not 0 <= instance_id < len(self._count) or self._count[instance_id] == 0:
            return None
        best, cat = self._sum[instance_id].max(dim=0)
        return VideoInstance(instance_id, int(cat), float(best / self._count[instance_id]))

    def ranked_all(self) -> List[VideoInstance]:
        """All (ID, category) entries by decreasing score."""
        return self.ranked(len(self._count) * self.categories_per_instance)

    def ranked(self, max_instances: int) -> List[VideoInstance]:
        """(ID, category) entries, up to ``categories_per_instance`` per ID, by decreasing score
        (ties: lower ID first, then its better category), at most ``max_instances``."""
        ids = torch.nonzero(self._count > 0)[:, 0]
        mean = self._sum[ids] / self._count[ids, None]  # (Y', C)
        k = self.categories_per_instance
        scores, cats = mean.topk(k, dim=1)  # (Y', k), best first (ties: lower class id)
        ids = ids[:, None].expand(-1, k)
        keep = scores > 0
        keep[:, 0] = True  # an ID always keeps its best category
        ids, cats, scores = ids[keep], cats[keep], scores[keep]  # row-major: ID, then rank
        order = torch.sort(scores, descending=True, stable=True).indices[:max_instances]
        return [
            VideoInstance(int(i), int(c), float(v))
            for i, c, v in zip(
                ids[order].tolist(), cats[order].tolist(), scores[order].tolist(), strict=True
            )
        ]
