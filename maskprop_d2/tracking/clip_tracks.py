"""Clip-level tracks in, final per-frame video-instance masks out (no model involved).

:class:`ClipTrackAggregator` is the second half of MaskProp's video inference: it gives each clip's
tracks their video IDs (:class:`maskprop_d2.tracking.ClipTrackMatcher`), keeps each frame's share
of the tracks that cover it, and, when asked for a frame, averages the soft masks per ID, resizes
them to the frame's output size and thresholds them. It works on plain tensors, so the same code
serves the model (:class:`~maskprop_d2.tracking.MaskPropTracker`) and oracle checks that feed it
ground-truth tracks (``tools/oracle.py``).
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .id_assignment import ClipTrackMatcher
from .outputs import CategoryVotes, FrameOutput, VideoInstance

__all__ = ["ClipTrackAggregator", "FrameGeometry"]


@dataclass
class FrameGeometry:
    """How a frame's track grid maps to its output.

    The grid (h', w') covers the padded network input at ``stride`` pixels a cell; the input image
    is its top-left ``image_size`` (h, w) part, shown at ``out_size`` (H, W).
    """

    image_size: Tuple[int, int]
    out_size: Tuple[int, int]
    stride: int = 1


class ClipTrackAggregator:
    """ID assignment and per-frame mask combination of clip-level tracks.

    Args:
        half_length: T (clips span at most t-T..t+T).
        match_thresh: the ID assignment threshold on q.
        mask_thresh: threshold on the averaged soft masks.
        num_classes, categories_per_instance: for the category votes (:class:`CategoryVotes`).
    """

    def __init__(
        self,
        half_length: int,
        match_thresh: float,
        mask_thresh: float,
        num_classes: int,
        categories_per_instance: int = 1,
    ):
        self.mask_thresh = mask_thresh
        self._matcher = ClipTrackMatcher(half_length, match_thresh)
        self.votes = CategoryVotes(num_classes, categories_per_instance)
        self._geometry: Dict[int, FrameGeometry] = {}
        # frame -> list of (ids (n,), soft masks (n, h', w')) from the tracks covering it
        self._pending: Dict[int, list] = defaultdict(list)
        # frame -> list of (ids (n,), callable giving (n, H, W) soft masks at output size)
        self._full_res: Dict[int, list] = defaultdict(list)

    def set_geometry(self, frame: int, geometry: FrameGeometry) -> None:
        """Declare a frame's geometry (before any clip covering it is added)."""
        self._geometry[frame] = geometry

    def add_clip(
        self,
        t: int,
        frames: range,
        tracks: torch.Tensor,
        classes: torch.Tensor,
        scores: torch.Tensor,
        center_masks: Optional[Callable[[], torch.Tensor]] = None,
        class_probs: Optional[torch.Tensor] = None,
        may_start: Optional[torch.Tensor] = None,
    ) -> List[int]:
        """Assign IDs to the tracks of the clip centred at ``t`` and record their masks.

        Args:
            t: the centre frame; clips come in increasing t.
            frames: the frames the tracks cover (contains t).
            tracks: (N, len(frames), h', w') soft masks on the grid.
            classes, scores: (N,) the centre-frame detections' classes and scores.
            center_masks: optional; returns (N, H, W) soft masks of frame t at output size,
                used there instead of ``tracks[:, t]`` (called when frame t is emitted).
            class_probs: optional (N, C) class probabilities of the detections (the votes).
            may_start: optional (N,) bool: tracks that may only continue an existing ID
                (False) are dropped when they would start a new one.
        Returns:
            the N video IDs (-1 for a dropped track).
        """
        ids_list = self._matcher.assign(t, frames, tracks, classes, may_start)
        ids = torch.as_tensor(ids_list, dtype=torch.long)
        keep = ids >= 0
        if not bool(keep.all()):
            ids, tracks = ids[keep], tracks[keep.to(tracks.device)]
            classes, scores = classes[keep.to(classes.device)], scores[keep.to(scores.device)]
            if class_probs is not None:
                class_probs = class_probs[keep.to(class_probs.device)]
            if center_masks is not None:
                all_centers = center_masks

                def center_masks():
                    return all_centers()[keep]

        if len(ids) == 0:
            return ids_list
        for k, f in enumerate(frames):
            if f == t and center_masks is not None:
                continue
            self._pending[f].append((ids, tracks[:, k]))
        if center_masks is not None:
            self._full_res[t].append((ids, center_masks))
        self.votes.add(ids.tolist(), classes, scores, class_probs)
        return ids_list

    def emit(self, tau: int) -> FrameOutput:
        """Final masks of frame tau (all clips covering it must have been added); forgets it."""
        geo = self._geometry.pop(tau)
        entries = self._pending.pop(tau, [])
        full = self._full_res.pop(tau, [])
        height, width = geo.out_size
        h, w = geo.image_size
        all_ids = [e[0] for e in entries] + [e[0] for e in full]
        all_ids = torch.cat(all_ids) if all_ids else torch.zeros(0, dtype=torch.long)
        uniq, inverse = torch.unique(all_ids, sorted=True, return_inverse=True)
        if len(uniq) == 0:
            return FrameOutput(tau, uniq, torch.zeros((0, height, width), dtype=torch.bool))
        total = torch.zeros((len(uniq), height, width))
        count = torch.zeros(len(uniq))
        pos = 0
        if entries:
            m = torch.cat([e[1] for e in entries]).float().cpu()  # (M, h', w')
            k = len(m)
            summed = torch.zeros((len(uniq),) + m.shape[-2:]).index_add_(0, inverse[:k], m)
            count.index_add_(0, inverse[:k], torch.ones(k))
            total += _grid_to_output(summed, geo)
            pos = k
        for ids, fn in full:
            n = len(ids)
            total.index_add_(0, inverse[pos : pos + n], fn().float().cpu())
            count.index_add_(0, inverse[pos : pos + n], torch.ones(n))
            pos += n
        masks = (total / count[:, None, None]) > self.mask_thresh
        visible = masks.flatten(1).any(1)
        return FrameOutput(tau, uniq[visible], masks[visible])

    def current_instance(self, instance_id: int) -> Optional[VideoInstance]:
        return self.votes.get(instance_id)

    @property
    def num_stored_clips(self) -> int:
        """Earlier clips kept for matching (see :class:`ClipTrackMatcher`)."""
        return self._matcher.num_stored_clips

    @property
    def num_ids(self) -> int:
        """Number of video IDs handed out so far."""
        return self._matcher.num_ids

    def num_pending_frames(self) -> int:
        """Frames with recorded track masks not yet emitted (bounded by the clip window)."""
        return len(set(self._pending) | set(self._full_res))


def _grid_to_output(grid: torch.Tensor, geo: FrameGeometry) -> torch.Tensor:
    """(n, h', w') grid masks -> (n, H, W): upsample by the stride, crop the image, resize."""
    hf, wf = grid.shape[-2:]
    h, w = geo.image_size
    height, width = geo.out_size
    x = grid[None]
    if geo.stride != 1:
        x = F.interpolate(
            x, size=(hf * geo.stride, wf * geo.stride), mode="bilinear", align_corners=False
        )
    x = x[..., :h, :w]
    if (h, w) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x[0]
