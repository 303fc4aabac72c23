"""Online clip-matching ID assignment of MaskProp (``docs/method.md``), on plain tensors.

Every frame t is a clip centre; each detection of frame t yields a clip-level track: soft masks for
the frames ``max(0, t-T) .. min(L-1, t+T)``. Clips are processed in frame order by
:class:`ClipTrackMatcher`:

* matching score of track i (clip t) and an earlier track j (clip t') whose clips overlap:
  ``m = mean over the overlapping frames of sIoU(M^i(tau), M^j(tau))`` (soft IoU of
  :mod:`maskprop_d2.utils.masks`; two empty masks have soft IoU 1);
* ``q_t^i(y) = sum_{t'<t, overlapping} sum_j 1{y_j = y} m^{i,j} / #{earlier overlapping tracks with
  ID y}``: the denominator counts every earlier track in the window that carries y, also those whose
  score is 0;
* a track takes ``argmax_y q(y)`` if ``q > match_thresh`` (strictly), else a new ID.

Ties: when the tracks' classes are given, ``1e-6 x`` the fraction of an ID's earlier tracks (in
the window) that share the track's class is added to the assignment weights. It decides only
between (near-)equal q values, e.g. two objects hidden at the same time: every pair of empty masks
has soft IoU 1, so a reappearing track scores q = 1 for both IDs, and the class picks the right one.

Same-clip conflicts: two tracks of one clip never share an ID. The IDs are chosen by a
maximum-weight one-to-one assignment (``scipy.optimize.linear_sum_assignment``) of tracks to
existing IDs with weights ``q`` where ``q > match_thresh`` and 0 otherwise; a track left unassigned,
or assigned to an ID with ``q <= match_thresh``, gets a new ID. Without conflicts this is exactly
the per-track argmax.

IDs are consecutive ints starting at ``first_id`` (default 0), handed out in track order.

Memory: only clips that can still overlap a later clip are kept. Clip starts never decrease, so a
stored clip whose last frame precedes the start of the current clip can never overlap again and is
dropped, as soon as the next clip's earliest possible start ``max(start, t+1-T)`` is past its end.
With clips of half-length T that keeps at most the 2T previous clips (O(T), not O(video length)).
"""

from collections import namedtuple
from typing import Callable, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..utils.masks import pairwise_soft_iou

__all__ = ["ClipTrackMatcher", "clip_frame_range", "assign_ids_from_scores"]

_Clip = namedtuple("_Clip", ["t", "frames", "masks", "ids", "classes"])
# Weight of the class-agreement tie-break in the assignment (q is in [0, 1]).
TIE_BREAK_WEIGHT = 1e-6


def clip_frame_range(t: int, half_length: int, video_length: int) -> range:
    """Frames of the clip centred at ``t``: ``max(0, t-T) .. min(L-1, t+T)`` as a ``range``."""
    if not 0 <= t < video_length:
        raise ValueError("clip centre {} outside a video of {} frames".format(t, video_length))
    return range(max(0, t - half_length), min(video_length, t + half_length + 1))


def assign_ids_from_scores(
    q: np.ndarray,
    ids: Sequence[int],
    match_thresh: float,
    tie_break: Optional[np.ndarray] = None,
) -> List[Optional[int]]:
    """Pick an existing ID per track from ``q`` (N tracks x Y IDs); None means "new ID".

    Maximum-weight one-to-one assignment on the eligible scores (``q > match_thresh``); without
    conflicts this equals the per-track argmax. ``tie_break`` (N x Y, in [0, 1]) is added with
    weight :data:`TIE_BREAK_WEIGHT`; it never makes a score eligible.
    """
    q = np.asarray(q, dtype=np.float64).reshape(len(q), len(ids))
    out: List[Optional[int]] = [None] * q.shape[0]
    if q.size == 0:
        return out
    eligible = q > match_thresh
    if tie_break is not None:
        q = q + TIE_BREAK_WEIGHT * np.asarray(tie_break, dtype=np.float64).reshape(q.shape)
    weights = np.where(eligible, q, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if eligible[r, c]:
            out[r] = int(ids[c])
    return out


class ClipTrackMatcher:
    """Online ID assignment of clip-level tracks, clip by clip in frame order.

    Args:
        half_length: T; clips span at most ``t-T .. t+T``.
        match_thresh: a track joins an existing ID only if its ``q`` is strictly above this.
        first_id: the first ID handed out (IDs are consecutive ints).
    """

    def __init__(self, half_length: int, match_thresh: float, first_id: int = 0):
        if half_length < 0:
            raise ValueError("half_length must be >= 0, got {}".format(half_length))
        self.half_length = int(half_length)
        self.match_thresh = float(match_thresh)
        self.first_id = int(first_id)
        self.reset()

    def reset(self) -> None:
        """Forget all clips and restart the ID counter (a new video)."""
        self._history: List[_Clip] = []
        self._next_id = self.first_id
        self._last_t: Optional[int] = None
        self._last_start: Optional[int] = None

    @property
    def num_stored_clips(self) -> int:
        """Earlier clips kept in memory (those that may still overlap a later clip)."""
        return len(self._history)

    @property
    def num_ids(self) -> int:
        """Number of IDs handed out so far."""
        return self._next_id - self.first_id

    # ------------------------------------------------------------------ scores
    def _check(self, t: int, frame_range: range, masks: torch.Tensor) -> None:
        if not isinstance(frame_range, range) or frame_range.step != 1 or len(frame_range) == 0:
            raise ValueError("frame_range must be a non-empty range with step 1")
        if t not in frame_range:
            raise ValueError("clip centre {} not in its frame range {}".format(t, frame_range))
        if frame_range.start < t - self.half_length or frame_range.stop > t + self.half_length + 1:
            raise ValueError(
                "frame range {} exceeds t-T..t+T for t={}, T={}".format(
                    frame_range, t, self.half_length
                )
            )
        if masks.dim() != 4 or masks.shape[1] != len(frame_range):
            raise ValueError(
                "masks must be (N, {}, h, w) for frames {}, got {}".format(
                    len(frame_range), frame_range, tuple(masks.shape)
                )
            )
        if self._last_t is not None:
            if t <= self._last_t or frame_range.start < self._last_start:
                raise ValueError(
                    "clips must come in frame order: clip {} ({}) after clip {} (start {})".format(
                        t, frame_range, self._last_t, self._last_start
                    )
                )
        if self._history and tuple(masks.shape[2:]) != tuple(self._history[-1].masks.shape[2:]):
            raise ValueError(
                "mask size {} differs from earlier clips' {}".format(
                    tuple(masks.shape[2:]), tuple(self._history[-1].masks.shape[2:])
                )
            )

    def _window(self, frame_range: range) -> List[_Clip]:
        """Stored clips overlapping ``frame_range``."""
        return [
            c
            for c in self._history
            if c.frames.stop > frame_range.start and c.frames.start < frame_range.stop
        ]

    def matching_scores(
        self, frame_range: range, masks: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Matching scores of the given tracks against every stored earlier track that overlaps.

        Returns ``(m, ids, clip_t)``: m is (N, K) float64, the mean soft IoU over the overlapping
        frames; ids (K,) the IDs of the K earlier tracks; clip_t (K,) their clip centres.
        Does not change the state.
        """
        window = [c for c in self._window(frame_range) if c.masks.shape[0] > 0]
        n = masks.shape[0]
        sizes = [c.masks.shape[0] for c in window]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        total = int(offsets[-1])
        device = masks.device
        sums = torch.zeros((n, total), dtype=torch.float64, device=device)
        counts = torch.zeros((total,), dtype=torch.float64, device=device)
        if n > 0 and total > 0:
            for tau in frame_range:
                cover = [k for k, c in enumerate(window) if tau in c.frames]
                if not cover:
                    continue
                others = torch.cat(
                    [window[k].masks[:, tau - window[k].frames.start] for k in cover]
                )
                s = pairwise_soft_iou(masks[:, tau - frame_range.start], others.to(device))
                cols = torch.cat(
                    [torch.arange(offsets[k], offsets[k + 1], device=device) for k in cover]
                )
                sums[:, cols] += s.double()
                counts[cols] += 1
        m = sums / counts.clamp(min=1)
        ids = torch.cat([c.ids for c in window]) if window else torch.zeros(0, dtype=torch.long)
        clip_t = torch.tensor(
            [c.t for c in window for _ in range(c.masks.shape[0])], dtype=torch.long
        )
        return m, ids.cpu(), clip_t

    def id_scores(self, frame_range: range, masks: torch.Tensor) -> Tuple[torch.Tensor, List[int]]:
        """``q`` of every given track for every ID present in the window.

        Returns ``(q, ids)``: q is (N, Y) float64 and ids the Y IDs (sorted) it refers to.
        Does not change the state.
        """
        m, track_ids, _ = self.matching_scores(frame_range, masks)
        ids, inverse = torch.unique(track_ids, sorted=True, return_inverse=True)
        y = len(ids)
        onehot = torch.zeros((m.shape[1], y), dtype=torch.float64, device=m.device)
        onehot[torch.arange(m.shape[1], device=m.device), inverse.to(m.device)] = 1.0
        q = (m @ onehot) / onehot.sum(0).clamp(min=1)
        return q, ids.tolist()

    def class_agreement(
        self, frame_range: range, classes: torch.Tensor, ids: List[int]
    ) -> Optional[torch.Tensor]:
        """(N, Y) fraction of the earlier window tracks of each ID in ``ids`` whose class equals
        the track's ``classes[i]``; None when a stored clip has no classes."""
        window = [c for c in self._window(frame_range) if c.masks.shape[0] > 0]
        if any(c.classes is None for c in window):
            return None
        if not window:
            return torch.zeros((len(classes), len(ids)), dtype=torch.float64)
        track_ids = torch.cat([c.ids for c in window])
        track_cls = torch.cat([c.classes for c in window])
        onehot = (track_ids[:, None] == torch.as_tensor(ids, dtype=torch.long)[None, :]).double()
        same = (classes.cpu().long()[:, None] == track_cls[None, :]).double()  # (N, K)
        return (same @ onehot) / onehot.sum(0).clamp(min=1)

    # ------------------------------------------------------------------ assignment
    def assign(
        self,
        t: int,
        frame_range: range,
        masks: torch.Tensor,
        classes: Optional[torch.Tensor] = None,
        may_start: Optional[torch.Tensor] = None,
        fallback: Optional[Callable[[List[int], Set[int], Set[int]], List[Optional[int]]]] = None,
        fallback_window_ids: bool = False,
    ) -> List[int]:
        """Assign IDs to the tracks of the clip centred at ``t`` and remember them.

        Args:
            t: the clip centre frame; clips must come with increasing t.
            frame_range: the frames the tracks cover (e.g. :func:`clip_frame_range`).
            masks: (N, len(frame_range), h, w) soft masks in [0, 1], same h, w for every clip.
            classes: optional (N,) class of each track (its detection's), for the tie-break.
            may_start: optional (N,) bool; a track with False may only continue an existing ID:
                if it would get a new one it is dropped instead (ID -1, not remembered).
            fallback: optional; called as ``fallback(rows, exclude, window)`` with the tracks
                that would get a new ID, the IDs they may not take (those of the window and those
                this clip already took) and the IDs of the window; returns an earlier ID or None
                per row (re-identification, :class:`~maskprop_d2.tracking.reid_memory.ReIDMemory`).
            fallback_window_ids: the fallback may also return IDs of the window that no track
                of this clip took (by default only IDs outside the window).
        Returns:
            N ints: pairwise distinct IDs, and -1 for dropped tracks.
        """
        self._check(t, frame_range, masks)
        if classes is not None and len(classes) != masks.shape[0]:
            raise ValueError("got {} classes for {} tracks".format(len(classes), masks.shape[0]))
        if may_start is not None and len(may_start) != masks.shape[0]:
            raise ValueError(
                "got {} may_start flags for {} tracks".format(len(may_start), masks.shape[0])
            )
        q, ids = self.id_scores(frame_range, masks)
        tie = None
        if classes is not None and ids:
            tie = self.class_agreement(frame_range, classes, ids)
        chosen = assign_ids_from_scores(
            q.cpu().numpy(), ids, self.match_thresh, None if tie is None else tie.numpy()
        )
        if fallback is not None and any(c is None for c in chosen):
            rows = [k for k, c in enumerate(chosen) if c is None]
            exclude = {c for c in chosen if c is not None}
            if not fallback_window_ids:
                exclude |= set(ids)
            for k, c in zip(rows, fallback(rows, exclude, set(ids)), strict=True):
                chosen[k] = c
        out = []
        for k, c in enumerate(chosen):
            if c is None:
                if may_start is not None and not bool(may_start[k]):
                    out.append(-1)
                    continue
                c = self._next_id
                self._next_id += 1
            out.append(c)
        keep = torch.tensor([c >= 0 for c in out], dtype=torch.bool)
        cls = None if classes is None else classes.detach().cpu().long()[keep]
        kept_ids = torch.tensor([c for c in out if c >= 0], dtype=torch.long)
        self._history.append(
            _Clip(int(t), frame_range, masks.detach()[keep.to(masks.device)], kept_ids, cls)
        )
        self._last_t, self._last_start = int(t), frame_range.start
        # Later clips start at >= max(this start, t+1-T): drop the clips that end before that.
        next_start = max(frame_range.start, t + 1 - self.half_length)
        self._history = [c for c in self._history if c.frames.stop > next_start]
        return out
