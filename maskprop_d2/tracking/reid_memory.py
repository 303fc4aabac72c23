"""Re-identification memory for MaskProp's clip matching: IDs that survive long occlusions.

MaskProp links a clip track to an earlier ID only through frames that both clips cover, so an
object that goes undetected for more than 2T frames comes back under a new ID. This memory keeps,
for every ID that was seen within the last ``max_gap`` frames, an appearance embedding, its class
and its last box. A clip track that would start a new ID is first compared with the remembered IDs
that are *not* in the clip matching's window (those the masks could not reach):

    score(track, ID) = cos(e_track, e_ID) + class_weight * [same class]
                       + position_weight * exp(-(d / position_sigma)^2)

(d: distance between the track's box centre and the ID's last one, in frame diagonals); the best
one-to-one assignment (``linear_sum_assignment``) with scores above ``thresh`` gives old IDs back.
Memory: at most ``capacity`` IDs (the longest unseen are dropped) and only IDs seen within
``max_gap`` frames; O(capacity) whatever the video length.
"""

from typing import Dict, Iterable, List, Optional, Set

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

__all__ = ["ReIDMemory", "ReIDFeatures"]


class ReIDFeatures:
    """What the memory knows of N clip tracks (their centre-frame detections).

    Attributes:
        embeddings: (N, D) float appearance embeddings (normalised here).
        classes: (N,) long classes.
        centers: (N, 2) box centres in units of the frame diagonal (x, y).
    """

    def __init__(self, embeddings: torch.Tensor, classes: torch.Tensor, centers: torch.Tensor):
        self.embeddings = F.normalize(embeddings.detach().float().cpu(), dim=1)
        self.classes = classes.detach().long().cpu()
        self.centers = centers.detach().float().cpu()

    @classmethod
    def from_boxes(cls, embeddings, classes, boxes: torch.Tensor, image_size) -> "ReIDFeatures":
        """``boxes``: (N, 4) XYXY in pixels of an ``image_size`` = (h, w) frame."""
        h, w = image_size
        diag = float((h * h + w * w) ** 0.5)
        b = boxes.detach().float().cpu()
        centers = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], dim=1) / diag
        return cls(embeddings, classes, centers)

    def __len__(self) -> int:
        return len(self.classes)

    def subset(self, keep: torch.Tensor) -> "ReIDFeatures":
        """The features of the tracks where ``keep`` (N,) bool is True."""
        keep = keep.cpu()
        out = ReIDFeatures.__new__(ReIDFeatures)
        out.embeddings, out.classes = self.embeddings[keep], self.classes[keep]
        out.centers = self.centers[keep]
        return out


class ReIDMemory:
    """Remembered IDs (see the module docstring).

    Args:
        max_gap: IDs not seen for more than this many frames are forgotten.
        capacity: at most this many IDs are remembered (the longest unseen are dropped).
        thresh: a track takes a remembered ID only if its score is above this.
        class_weight, position_weight, position_sigma: the score's class and position terms.
        momentum: an ID's embedding is ``momentum * old + (1 - momentum) * new`` on each update.
        window_ids: also offer the IDs of the clip matching's window that no track of the clip
            took (their masks did not overlap enough), not only IDs the masks cannot reach.
        window_thresh: the score such a window ID needs (``thresh`` if lower or None).
    """

    def __init__(
        self,
        max_gap: int = 40,
        capacity: int = 64,
        thresh: float = 0.9,
        class_weight: float = 0.5,
        position_weight: float = 0.3,
        position_sigma: float = 0.25,
        momentum: float = 0.5,
        window_ids: bool = False,
        window_thresh: Optional[float] = None,
    ):
        if max_gap < 1 or capacity < 1:
            raise ValueError(
                "max_gap and capacity must be >= 1, got {} and {}".format(max_gap, capacity)
            )
        self.max_gap = int(max_gap)
        self.capacity = int(capacity)
        self.thresh = float(thresh)
        self.class_weight = float(class_weight)
        self.position_weight = float(position_weight)
        self.position_sigma = float(position_sigma)
        self.momentum = float(momentum)
        self.window_ids = bool(window_ids)
        self.window_thresh = max(self.thresh, float(window_thresh or 0.0))
        self.reset()

    def reset(self) -> None:
        # ID -> (embedding (D,), class, centre (2,), last frame seen)
        self._entries: Dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ids(self) -> List[int]:
        return list(self._entries)

    def update(self, ids: Iterable[int], frame: int, feats: ReIDFeatures) -> None:
        """Record the tracks of the clip centred at ``frame`` under their IDs (-1: skipped)."""
        for k, y in enumerate(ids):
            if y < 0:
                continue
            e = feats.embeddings[k]
            if y in self._entries:
                old = self._entries[y][0]
                e = F.normalize(self.momentum * old + (1 - self.momentum) * e, dim=0)
            self._entries[y] = (e, int(feats.classes[k]), feats.centers[k], int(frame))
        self._forget(frame)

    def _forget(self, frame: int) -> None:
        live = {y: v for y, v in self._entries.items() if frame - v[3] <= self.max_gap}
        if len(live) > self.capacity:
            newest = sorted(live, key=lambda y: live[y][3], reverse=True)[: self.capacity]
            live = {y: live[y] for y in newest}
        self._entries = live

    def scores(self, frame: int, feats: ReIDFeatures, candidates: List[int]) -> np.ndarray:
        """(N, len(candidates)) scores of the tracks against remembered IDs."""
        if not candidates or len(feats) == 0:
            return np.zeros((len(feats), len(candidates)))
        emb = torch.stack([self._entries[y][0] for y in candidates])  # (Y, D)
        cls = torch.tensor([self._entries[y][1] for y in candidates])
        ctr = torch.stack([self._entries[y][2] for y in candidates])  # (Y, 2)
        cos = feats.embeddings @ emb.T
        same = (feats.classes[:, None] == cls[None, :]).float()
        d = torch.cdist(feats.centers, ctr)
        pos = torch.exp(-((d / self.position_sigma) ** 2))
        s = cos + self.class_weight * same + self.position_weight * pos
        return s.double().numpy()

    def match(
        self,
        frame: int,
        feats: ReIDFeatures,
        rows: List[int],
        exclude: Set[int],
        window: Iterable[int] = (),
    ) -> List[Optional[int]]:
        """Remembered IDs for the tracks ``rows`` (indices into ``feats``) that would start a new
        ID at the clip centred at ``frame``; None where no remembered ID scores above ``thresh``
        (``window_thresh`` for the IDs in ``window``, those of the clip matching's window). IDs
        in ``exclude`` (those the clip matching can still reach, or already taken) and IDs unseen
        for more than ``max_gap`` frames are not candidates. One-to-one."""
        out: List[Optional[int]] = [None] * len(rows)
        cands = [
            y
            for y, v in self._entries.items()
            if y not in exclude and 0 < frame - v[3] <= self.max_gap
        ]
        if not rows or not cands:
            return out
        s = self.scores(frame, feats.subset(torch.as_tensor(rows)), cands)
        in_window = set(window)
        need = [self.window_thresh if y in in_window else self.thresh for y in cands]
        eligible = s > np.asarray(need)[None, :]
        r, c = linear_sum_assignment(np.where(eligible, s, 0.0), maximize=True)
        for i, j in zip(r.tolist(), c.tolist(), strict=True):
            if eligible[i, j]:
                out[i] = cands[j]
        return out
