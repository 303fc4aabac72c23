"""Clip-level tracks in, final per-frame video-instance masks out (no model involved).

:class:`ClipTrackAggregator` is the second half of MaskProp's video inference: it gives each clip's
tracks their video IDs (:class:`maskprop_d2.tracking.ClipTrackMatcher`), keeps each frame's share
of the tracks that cover it, and, when asked for a frame, combines the soft masks per ID (the
paper's mean, or a mean weighted by each track's temporal distance from its centre frame), resizes
them to the frame's output size and thresholds them. It works on plain tensors, so the same code
serves the model (:class:`~maskprop_d2.tracking.MaskPropTracker`) and oracle checks that feed it
ground-truth tracks (``tools/oracle.py``).
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..modeling.mask_ops import add_soft_masks_in_boxes, paste_soft_masks
from .id_assignment import ClipTrackMatcher
from .outputs import CategoryVotes, FrameOutput, VideoInstance
from .reid_memory import ReIDFeatures, ReIDMemory

__all__ = ["ClipTrackAggregator", "FrameGeometry", "MASK_COMBINATIONS"]

# How the soft masks of one video ID at one frame are combined (``INFERENCE.MASK_COMBINATION``):
# "mean": the paper's equal-weight mean; "distance": a mean weighted by decay**|τ - t| for a
# track centred at t (the track's own detection mask has weight 1).
MASK_COMBINATIONS = ("mean", "distance")


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
        mask_thresh: threshold on the combined soft masks.
        num_classes, categories_per_instance: for the category votes (:class:`CategoryVotes`).
        combination: "mean" (the paper) or "distance" (see ``MASK_COMBINATIONS``).
        distance_decay: λ of "distance": a track centred at t weighs λ**|τ - t| at frame τ. With
            λ < 1/3 the weights of all other tracks together stay below the centre track's (the
            sum 2λ/(1-λ) < 1 for any T), so binary masks of a frame's own detections come out
            unchanged wherever the ID was detected.
        reid: optional re-identification memory: a track that would start a new ID may take a
            remembered one (:class:`ReIDMemory`; needs ``reid_features`` in :meth:`add_clip`).
            Such a track replaces the ID's masks from earlier tracks from its centre frame on
            (they and the track disagree, or the clip matching would have given it the ID);
            before its centre it adds its masks only at frames where the ID has none.
        suppress_covered: an ID not detected at a frame (its mask there is propagated only) is
            left out of that frame when more than this fraction of its mask lies on the masks of
            IDs detected there (a fragment's copy of a detected object, or an object hidden
            behind a detected one); >= 1 keeps every mask (the paper).
    """

    def __init__(
        self,
        half_length: int,
        match_thresh: float,
        mask_thresh: float,
        num_classes: int,
        categories_per_instance: int = 1,
        combination: str = "mean",
        distance_decay: float = 0.25,
        reid: Optional[ReIDMemory] = None,
        suppress_covered: float = 1.0,
    ):
        if combination not in MASK_COMBINATIONS:
            raise ValueError(
                "mask combination must be one of {}, got {!r}".format(
                    MASK_COMBINATIONS, combination
                )
            )
        if not 0.0 < distance_decay <= 1.0:
            raise ValueError("distance_decay must be in (0, 1], got {}".format(distance_decay))
        self.combination = combination
        self.distance_decay = float(distance_decay)
        self.mask_thresh = mask_thresh
        self._matcher = ClipTrackMatcher(half_length, match_thresh)
        self.votes = CategoryVotes(num_classes, categories_per_instance)
        self.reid = reid
        if reid is not None:
            reid.reset()
        self.suppress_covered = float(suppress_covered)
        # frame -> list of ids (n,) of the tracks centred there (the IDs detected at that frame)
        self._detected: Dict[int, list] = defaultdict(list)
        self._geometry: Dict[int, FrameGeometry] = {}
        # frame -> list of (ids (n,), soft masks (n, h', w'), weight) from the tracks covering it
        self._pending: Dict[int, list] = defaultdict(list)
        # frame -> list of (ids (n,), crops (n, S, S), windows (n, 4) grid cells, weight)
        self._crops: Dict[int, list] = defaultdict(list)
        # frame -> list of (ids (n,), callable giving (n, H, W) soft masks at output size)
        self._full_res: Dict[int, list] = defaultdict(list)

    def weight(self, distance: int) -> float:
        """Weight of a track's mask at ``distance`` frames from its centre frame."""
        if self.combination == "mean":
            return 1.0
        return self.distance_decay ** abs(int(distance))

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
        crops: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        reid_features: Optional[ReIDFeatures] = None,
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
            crops: optional ((N, len(frames), S, S) soft masks, (N, 4) windows in grid cells):
                the tracks at the propagation head's crop resolution, used for the output
                masks instead of ``tracks`` (which still decide the IDs).
            reid_features: the tracks' appearance, class and position for the re-identification
                memory (ignored without one).
        Returns:
            the N video IDs (-1 for a dropped track).
        """
        fallback = None
        reidentified: set = set()  # IDs the re-identification memory gave to this clip's tracks
        if self.reid is not None and reid_features is not None:

            def fallback(rows, exclude, window):
                found = self.reid.match(t, reid_features, rows, exclude, window)
                reidentified.update(y for y in found if y is not None)
                return found

        ids_list = self._matcher.assign(
            t, frames, tracks, classes, may_start, fallback,
            fallback_window_ids=self.reid is not None and self.reid.window_ids,
        )  # fmt: skip
        if self.reid is not None and reid_features is not None:
            self.reid.update(ids_list, t, reid_features)
        ids = torch.as_tensor(ids_list, dtype=torch.long)
        keep = ids >= 0
        if not bool(keep.all()):
            ids, tracks = ids[keep], tracks[keep.to(tracks.device)]
            classes, scores = classes[keep.to(classes.device)], scores[keep.to(scores.device)]
            if class_probs is not None:
                class_probs = class_probs[keep.to(class_probs.device)]
            if crops is not None:
                crops = (crops[0][keep.to(crops[0].device)], crops[1][keep.to(crops[1].device)])
            if center_masks is not None:
                all_centers = center_masks

                def center_masks():
                    return all_centers()[keep]

        if len(ids) == 0:
            return ids_list
        resumed = None
        if reidentified:
            resumed = torch.as_tensor(sorted(reidentified), dtype=torch.long)
            for f in frames:
                if f >= t:  # the re-identified track replaces the ID's earlier masks from t on
                    self._drop_ids(f, resumed)
        for k, f in enumerate(frames):
            if f == t and center_masks is not None:
                continue
            rows = None
            if resumed is not None and f < t:  # ... and before t keeps them where there are any
                rows = ~torch.isin(ids, resumed[torch.isin(resumed, self._ids_at(f))])
                if bool(rows.all()):
                    rows = None
                elif not bool(rows.any()):
                    continue
            if crops is not None:
                entry = (ids, crops[0][:, k], crops[1], self.weight(f - t))
                self._crops[f].append(_select_rows(entry, rows))
            else:
                entry = (ids, tracks[:, k], self.weight(f - t))
                self._pending[f].append(_select_rows(entry, rows))
        if center_masks is not None:
            self._full_res[t].append((ids, center_masks))
        self._detected[t].append(ids)
        self.votes.add(ids.tolist(), classes, scores, class_probs)
        return ids_list

    def _ids_at(self, f: int) -> torch.Tensor:
        """IDs with masks recorded at frame ``f``."""
        groups = [e[0] for d in (self._pending, self._crops, self._full_res) for e in d.get(f, [])]
        return torch.cat(groups) if groups else torch.zeros(0, dtype=torch.long)

    def _drop_ids(self, f: int, drop: torch.Tensor) -> None:
        """Forget the masks recorded at frame ``f`` for the IDs in ``drop`` (clip tracks and
        centre-frame detections alike)."""
        for store in (self._pending, self._crops, self._full_res):
            if f in store:
                kept = [_select_rows(e, ~torch.isin(e[0], drop)) for e in store[f]]
                store[f] = [e for e in kept if len(e[0])]

    def emit(self, tau: int) -> FrameOutput:
        """Final masks of frame tau (all clips covering it must have been added); forgets it."""
        geo = self._geometry.pop(tau)
        entries = self._pending.pop(tau, [])
        crop_entries = self._crops.pop(tau, [])
        full = self._full_res.pop(tau, [])
        detected = self._detected.pop(tau, [])
        height, width = geo.out_size
        groups = [e[0] for e in entries] + [e[0] for e in crop_entries] + [e[0] for e in full]
        all_ids = torch.cat(groups) if groups else torch.zeros(0, dtype=torch.long)
        uniq, inverse = torch.unique(all_ids, sorted=True, return_inverse=True)
        if len(uniq) == 0:
            return FrameOutput(tau, uniq, torch.zeros((0, height, width), dtype=torch.bool))
        total = torch.zeros((len(uniq), height, width))
        count = torch.zeros(len(uniq))
        pos = 0
        if entries:
            m = torch.cat([e[1] for e in entries]).float().cpu()  # (M, h', w')
            w = torch.cat([torch.full((len(e[0]),), e[2]) for e in entries])
            k = len(m)
            summed = torch.zeros((len(uniq),) + m.shape[-2:])
            summed.index_add_(0, inverse[:k], m * w[:, None, None])
            count.index_add_(0, inverse[:k], w)
            total += _grid_to_output(summed, geo)
            pos = k
        if crop_entries:
            c = torch.cat([e[1] for e in crop_entries]).float().cpu()  # (M, S, S)
            win = torch.cat([e[2] for e in crop_entries]).float().cpu()  # (M, 4) grid cells
            w = torch.cat([torch.full((len(e[0]),), e[3]) for e in crop_entries])
            k = len(c)
            _add_crops_to_output(total, inverse[pos : pos + k], c, win, geo, w)
            count.index_add_(0, inverse[pos : pos + k], w)
            pos += k
        for ids, fn in full:
            n = len(ids)
            total.index_add_(0, inverse[pos : pos + n], fn().float().cpu())
            count.index_add_(0, inverse[pos : pos + n], torch.ones(n))
            pos += n
        masks = (total / count[:, None, None]) > self.mask_thresh
        if self.suppress_covered < 1.0 and detected:
            masks = self._suppress_covered(masks, torch.isin(uniq, torch.cat(detected)))
        visible = masks.flatten(1).any(1)
        return FrameOutput(tau, uniq[visible], masks[visible])

    def _suppress_covered(self, masks: torch.Tensor, detected: torch.Tensor) -> torch.Tensor:
        """(n, H, W) bool masks of a frame's IDs, (n,) bool detected there -> the masks with the
        undetected IDs' masks cleared where ``suppress_covered`` of them lies on detected ones."""
        if not detected.any() or detected.all():
            return masks
        union = masks[detected].any(0)
        area = masks.flatten(1).sum(1)
        covered = (masks & union).flatten(1).sum(1)
        drop = ~detected & (covered > self.suppress_covered * area)
        return masks & ~drop[:, None, None]

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
        frames = set(self._pending) | set(self._crops) | set(self._full_res)
        return len(frames | set(self._detected))


def _select_rows(entry: tuple, rows: Optional[torch.Tensor]) -> tuple:
    """An entry of ``_pending``/``_crops``/``_full_res`` (ids (n,) first, then per-row tensors, a
    callable giving per-row masks, or a scalar weight) restricted to ``rows`` ((n,) bool)."""
    if rows is None or bool(rows.all()):
        return entry
    out = []
    for x in entry:
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            x = x[rows.to(x.device)]
        elif callable(x):
            x = _RowSubset(x, rows)
        out.append(x)
    return tuple(out)


class _RowSubset:
    """``fn()[rows]``, evaluated when called (centre-frame masks are made at emission)."""

    def __init__(self, fn: Callable[[], torch.Tensor], rows: torch.Tensor):
        self.fn, self.rows = fn, rows

    def __call__(self) -> torch.Tensor:
        masks = self.fn()
        return masks[self.rows.to(masks.device)]


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


def _add_crops_to_output(total, index, crops, windows, geo: FrameGeometry, weights) -> None:
    """``total[index] += weights * _crops_to_output(crops, windows, geo)``, sampling only the
    windows' pixels ((U, H, W) ``total``, in place)."""
    h, w = geo.image_size
    height, width = geo.out_size
    scale = windows.new_tensor([width / w, height / h, width / w, height / h]) * geo.stride
    add_soft_masks_in_boxes(total, index, crops, windows * scale, weights)


def _crops_to_output(crops: torch.Tensor, windows: torch.Tensor, geo: FrameGeometry):
    """(n, S, S) soft masks on windows (n, 4) in grid cells -> (n, H, W) at output size (zero
    outside each window)."""
    h, w = geo.image_size
    height, width = geo.out_size
    scale = windows.new_tensor([width / w, height / h, width / w, height / h]) * geo.stride
    return paste_soft_masks(crops, windows * scale, (height, width))
