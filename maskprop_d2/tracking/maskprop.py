"""MaskProp's tracker: frames -> features -> detections -> clip tracks -> video instances.

Frames arrive in order. Each frame's backbone runs exactly once; its reduced propagation feature
is kept only while a clip still needs it (a window of 2T+1 frames). Every frame t is a clip centre:
its detections (score threshold, top-k) are propagated to the frames max(0, t-T)..t+T in one
batched call of the propagation head, giving clip-level tracks, and the tracks get video IDs from
:class:`maskprop_d2.tracking.ClipTrackMatcher` as soon as the clip is complete, i.e. when frame t+T
has arrived.

Frame tau's masks combine the tracks of clips tau-T..tau+T, so its output is final once clip
tau+T has been matched (after frame tau+2T arrived: the matching score of clip tau+T uses all of its
frames). It is then handed out as a :class:`FrameOutput` and forgotten. Memory is O(T), independent
of the video length.
"""

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import torch
from detectron2.config import configurable
from detectron2.structures import Boxes

from ..modeling.mask_ops import paste_at_output_size, paste_soft_masks
from ..modeling.meta_arch import FrameDetections
from ..modeling.propagation import box_masks_in_windows
from .base import VIDEO_TRACKER_REGISTRY, DetectionTracker, detection_args
from .clip_tracks import ClipTrackAggregator, FrameGeometry
from .model_interface import (
    BoxFeatureHeads,
    EmbeddingHeads,
    FinePropagationHeads,
    PropagationHeads,
    check_model,
)
from .outputs import CategoryVotes, FrameOutput
from .reid_memory import ReIDFeatures, ReIDMemory

__all__ = ["MaskPropTracker"]


@dataclass
class _Detections:
    """Frame-level detections of one frame (already filtered by score and top-k)."""

    scores: torch.Tensor  # (N,)
    classes: torch.Tensor  # (N,)
    boxes: torch.Tensor  # (N, 4) XYXY in input-image pixels
    mask_probs: torch.Tensor  # (N, M, M) box-relative mask probabilities
    feat_masks: torch.Tensor  # (N, H', W') soft masks at propagation-feature resolution
    class_probs: Optional[torch.Tensor]  # (N, K) class probabilities, None if not available
    reid: Optional[ReIDFeatures] = None  # appearance, class, position (re-identification)


def reid_memory_from_config(cfg) -> Optional[ReIDMemory]:
    """The :class:`ReIDMemory` of ``MODEL.MASKPROP.INFERENCE.REID`` (None when disabled)."""
    c = cfg.MODEL.MASKPROP.INFERENCE.REID
    if not c.ENABLED:
        return None
    return ReIDMemory(
        max_gap=c.MAX_GAP,
        capacity=c.CAPACITY,
        thresh=c.THRESH,
        class_weight=c.CLASS_WEIGHT,
        position_weight=c.POSITION_WEIGHT,
        position_sigma=c.POSITION_SIGMA,
        window_ids=c.WINDOW_IDS,
        window_thresh=c.WINDOW_THRESH,
    )


@VIDEO_TRACKER_REGISTRY.register()
class MaskPropTracker(DetectionTracker):
    """MaskProp's clip-level tracking over a video, one frame at a time (see module docstring).

    Usage::

        tracker = build_video_tracker(cfg, model, "maskprop")  # or MaskPropTracker(cfg, model)
        for out in tracker.stream(frames):      # dicts with "image", "height", "width"
            ...                                 # out.ids, out.masks of frame out.frame_idx
        instances = tracker.video_instances()   # categories and scores, sorted by score
    """

    name = "maskprop"
    heads_interface = PropagationHeads

    @configurable
    def __init__(
        self,
        model,
        *,
        half_length: int,
        match_thresh: float = 0.3,
        center_mask: str = "detection",
        continue_score_thresh: float = 1.0,
        mask_combination: str = "mean",
        distance_decay: float = 0.25,
        reid: Optional[ReIDMemory] = None,
        reid_embedding: str = "box_features",
        suppress_covered: float = 1.0,
        **kwargs,
    ):
        """
        Args:
            model: a :class:`maskprop_d2.modeling.MaskProp` (eval mode is set here).
            half_length: T, clips span t-T..t+T.
            match_thresh: the ID assignment threshold on q.
            center_mask: "detection": a track's mask at its own centre frame is the Mask R-CNN
                mask (full resolution); "propagated": the propagation head's output there too.
            continue_score_thresh: detections scoring in [continue_score_thresh, score_thresh)
                become clip tracks too, but may only continue an existing video ID (dropped
                when they would start a new one): a track survives a few frames where its
                object's score dips. Off when >= score_thresh.
            mask_combination, distance_decay: how the masks of an ID's tracks covering a frame
                are combined (:class:`ClipTrackAggregator`): "mean" (the paper) or "distance".
            reid: optional re-identification memory (:class:`ReIDMemory`); None: the paper's
                clip matching alone.
            reid_embedding: "track_head", "box_features" or "auto" (see ``embed``).
            suppress_covered: see :class:`ClipTrackAggregator` (>= 1: off, the paper).
            kwargs: the detection settings (:class:`DetectionTracker`): which detections become
                clip tracks, the threshold on the averaged soft masks, ``max_instances``,
                ``categories_per_instance``.
        """
        if center_mask not in ("detection", "propagated"):
            raise ValueError(
                "center_mask must be 'detection' or 'propagated', got {!r}".format(center_mask)
            )
        super().__init__(model, **kwargs)
        self.T = int(half_length)
        self.match_thresh = match_thresh
        self.center_mask = center_mask
        self.continue_score_thresh = continue_score_thresh
        self.mask_combination = mask_combination
        self.distance_decay = distance_decay
        self._use_track_embedding = self._check_heads(model, reid, reid_embedding)
        self.reid = reid
        self.reid_embedding = reid_embedding
        self.suppress_covered = suppress_covered
        self.reset()

    def _check_heads(self, model, reid: Optional[ReIDMemory], reid_embedding: str) -> bool:
        """Check what the crop-resolution head and the re-identification memory need of the
        model (``model_interface``); returns whether the memory uses the tracking head."""
        if reid_embedding not in ("auto", "track_head", "box_features"):
            raise ValueError(
                "REID.EMBEDDING must be 'auto', 'track_head' or 'box_features', got {!r}".format(
                    reid_embedding
                )
            )
        if getattr(model.roi_heads, "fine_crops", False):
            check_model(model, FinePropagationHeads, self.name)
        if reid is None:
            return False
        use_track = reid_embedding == "track_head" or (
            reid_embedding == "auto" and hasattr(model.roi_heads, "embed")
        )
        check_model(
            model,
            EmbeddingHeads if use_track else BoxFeatureHeads,
            self.name + " with REID.EMBEDDING " + reid_embedding,
            "a tracking head comes with MaskTrackRCNN (configs/synthetic/masktrack_tiny.yaml)",
        )
        return use_track

    @classmethod
    def from_config(cls, cfg, model):
        c = cfg.MODEL.MASKPROP.INFERENCE
        return {
            "model": model,
            **detection_args(cfg),
            "half_length": cfg.INPUT.CLIP.HALF_LENGTH,
            "match_thresh": c.MATCH_THRESH,
            "center_mask": c.CENTER_MASK,
            "continue_score_thresh": c.CONTINUE_SCORE_THRESH,
            "mask_combination": c.MASK_COMBINATION,
            "distance_decay": c.MASK_DISTANCE_DECAY,
            "reid": reid_memory_from_config(cfg),
            "reid_embedding": c.REID.EMBEDDING,
            "suppress_covered": c.SUPPRESS_COVERED,
        }

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self._num_frames = 0
        self._features: Dict[int, object] = {}  # frame -> frame_state(...)
        self._dets: Dict[int, _Detections] = {}
        self._geometry: Dict[int, FrameGeometry] = {}
        self._tracks = ClipTrackAggregator(
            self.T,
            self.match_thresh,
            self.mask_thresh,
            self.model.roi_heads.num_classes,
            self.categories_per_instance,
            self.mask_combination,
            self.distance_decay,
            self.reid,
            self.suppress_covered,
        )

    # ------------------------------------------------------------------ per-frame work
    @property
    def _heads(self):
        return self.model.roi_heads

    def _ingest(self, idx: int, frame: dict) -> None:
        """Backbone (once), detections and the propagation state of one frame."""
        thresh = min(self.score_thresh, self.continue_score_thresh)
        det = self.model.detect_frame(frame, thresh, self.topk, self.nms_thresh)
        images, features, inst, probs = det
        stride = self._heads.mask_prop_stride
        grid = features[self._heads.mask_prop_in_feature].shape[-2:]
        boxes = inst.pred_boxes.tensor
        feat_masks = paste_soft_masks(probs, boxes / stride, grid)
        self._features[idx] = self.frame_state(idx, frame, det)
        class_probs = inst.class_probs if inst.has("class_probs") else None
        h, w = images.image_sizes[0]
        reid = None
        if self.reid is not None:
            emb = self.embed(features, boxes)
            reid = ReIDFeatures.from_boxes(emb, inst.pred_classes, boxes, (h, w))
        self._dets[idx] = _Detections(
            inst.scores, inst.pred_classes, boxes, probs, feat_masks, class_probs, reid
        )
        out_size = (int(frame.get("height", h)), int(frame.get("width", w)))
        geo = FrameGeometry((h, w), out_size, stride)
        self._geometry[idx] = geo
        self._tracks.set_geometry(idx, geo)

    def embed(self, features: Dict[str, torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """(N, D) appearance embeddings of a frame's N detections (boxes XYXY, input pixels):
        the tracking head's (``REID.EMBEDDING`` "track_head", or "auto" with a tracking head),
        else the box head's FC features of the boxes ("box_features")."""
        heads = self._heads
        box_list = [Boxes(boxes)]
        if self._use_track_embedding:
            return heads.embed(features, box_list)
        feats = [features[f] for f in heads.box_in_features]
        return heads.box_head(heads.box_pooler(feats, box_list))

    def frame_state(self, idx: int, frame: Dict, det: FrameDetections):
        """Propagation hook: what later clips need of frame ``idx`` to propagate masks to or from
        it, kept while a clip still needs it (:meth:`kept_state`): here the reduced propagation
        feature (D, H', W'). Called once per frame, in order, after its detection."""
        return self._heads.reduce_prop_features(det.features)[0]

    def kept_state(self, idx: int):
        """The :meth:`frame_state` of frame ``idx`` while it is kept (the window), else None."""
        return self._features.get(idx)

    def propagate_masks(self, t: int, frames: range, feat_masks: torch.Tensor) -> torch.Tensor:
        """Propagation hook: soft masks of frame t's n detections in each frame of ``frames``
        (the states of all of them are kept).

        Args:
            feat_masks: (n, H', W') the detections' soft masks at propagation-grid resolution.
        Returns:
            (n, F, H', W') soft masks in [0, 1], F = len(frames).
        """
        n, nf = len(feat_masks), len(frames)
        feats = torch.stack([self._features[f] for f in frames])  # (F, D, H', W')
        src = self._features[t][None].expand_as(feats)
        # rows ordered (frame, instance): row f*n + i is instance i propagated to frames[f]
        masks = feat_masks.repeat(nf, 1, 1)
        pair_index = torch.arange(nf, device=masks.device).repeat_interleave(n)
        logits = self._heads.propagate(src, feats, masks, pair_index)
        return logits.sigmoid().view(nf, n, *logits.shape[-2:]).transpose(0, 1)

    @property
    def fine_crops(self) -> bool:
        """Whether the propagation head works at its crops' resolution (``FINE_CROPS``)."""
        return bool(getattr(self._heads, "fine_crops", False))

    def propagate_crops(self, t: int, frames: range, det: _Detections):
        """Frame t's n detections propagated at the head's crop resolution (``FINE_CROPS``).

        Returns:
            tracks: (n, F, H', W') soft masks on the grid (the ID assignment's input);
            crops: (n, F, S, S) soft masks on each detection's window;
            windows: (n, 4) the windows (x0, y0, x1, y1) in grid cells.
        """
        heads = self._heads
        n, nf = len(det.scores), len(frames)
        feats = torch.stack([self._features[f] for f in frames])  # (F, D, H', W')
        grid = feats.shape[-2:]
        windows = heads.prop_windows(det.boxes.to(feats.dtype), grid)  # (n, 4)
        size = heads.mask_prop_head.roi_size
        src = box_masks_in_windows(det.mask_probs, det.boxes, windows, heads.mask_prop_stride, size)
        # rows ordered (frame, instance): row f*n + i is instance i propagated to frames[f]
        pair_index = torch.arange(nf, device=feats.device).repeat_interleave(n)
        srcf = self._features[t][None].expand_as(feats)
        logits = heads.propagate_crops(
            srcf, feats, src.repeat(nf, 1, 1), windows.repeat(nf, 1), pair_index
        )
        tracks = heads.mask_prop_head.paste(logits, windows.repeat(nf, 1), grid).sigmoid()
        crops = logits.sigmoid().view(nf, n, size, size).transpose(0, 1)
        return tracks.view(nf, n, *grid).transpose(0, 1), crops, windows

    def _process_clip(self, t: int, last: int) -> None:
        """Propagate frame t's detections to max(0, t-T)..last and assign their IDs."""
        frames = range(max(0, t - self.T), last + 1)
        det = self._dets.pop(t)
        geo = self._geometry.pop(t)
        n, nf = len(det.scores), len(frames)
        crops = None
        if n == 0:
            tracks = det.feat_masks.new_zeros((0, nf) + det.feat_masks.shape[-2:])
        elif self.fine_crops and type(self).propagate_masks is MaskPropTracker.propagate_masks:
            tracks, fine, windows = self.propagate_crops(t, frames, det)
            crops = (fine, windows)
        else:
            tracks = self.propagate_masks(t, frames, det.feat_masks)
        center = None
        if self.center_mask == "detection":
            probs, boxes = det.mask_probs, det.boxes

            def center():  # pasted at full resolution only when frame t is emitted
                return paste_at_output_size(probs, boxes, geo.image_size, geo.out_size)

        may_start = None
        if self.continue_score_thresh < self.score_thresh:
            may_start = det.scores >= self.score_thresh
        self._tracks.add_clip(
            t, frames, tracks, det.classes, det.scores, center, det.class_probs, may_start, crops,
            det.reid,
        )

    # ------------------------------------------------------------------ VideoTracker
    def update(self, frame: Dict) -> List[FrameOutput]:
        """Ingest frame tau; clip tau - T is now complete: propagate and match it, after which
        frame tau - 2T is final."""
        tau = self._num_frames
        self._num_frames += 1
        self._ingest(tau, frame)
        t = tau - self.T
        if t < 0:
            return []
        self._process_clip(t, last=tau)
        self._features.pop(t - self.T, None)  # no later clip reaches back to t - T
        return [self._tracks.emit(t - self.T)] if t - self.T >= 0 else []

    def finish(self) -> Iterator[FrameOutput]:
        n, T = self._num_frames, self.T
        for t in range(max(0, n - T), n):
            self._process_clip(t, last=n - 1)
        for tau in range(max(0, n - 2 * T), n):
            yield self._tracks.emit(tau)
        self._features.clear()

    @property
    def votes(self) -> CategoryVotes:
        """The votes of the clip tracks (:class:`ClipTrackAggregator`)."""
        return self._tracks.votes

    def state_size(self) -> Dict[str, int]:
        """``features``: frames whose propagation feature is cached (<= 2T + 1);
        ``detections``: frames whose detections wait for their clip (<= T + 1);
        ``pending_frames``: frames with track masks not handed out yet (<= 2T + 1);
        ``stored_clips``: earlier clips kept for matching (<= 2T); ``video_ids``: IDs so far."""
        return {
            "features": len(self._features),
            "detections": len(self._dets),
            "pending_frames": self._tracks.num_pending_frames(),
            "stored_clips": self._tracks.num_stored_clips,
            "video_ids": self._tracks.num_ids,
        }
