"""Streaming video inference: frames -> features -> detections -> clip tracks -> video instances.

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
from typing import Dict, Iterable, Iterator, List, Optional

import torch
from detectron2.config import configurable
from torchvision.ops import nms

from ..modeling.mask_ops import paste_soft_masks
from .clip_tracks import ClipTrackAggregator, FrameGeometry
from .outputs import CategoryVotes, FrameOutput, VideoInstance

__all__ = [
    "CategoryVotes",
    "FrameOutput",
    "VideoInstance",
    "VideoInference",
    "detect_frame",
    "paste_at_output_size",
]


@dataclass
class _Detections:
    """Frame-level detections of one frame (already filtered by score and top-k)."""

    scores: torch.Tensor  # (N,)
    classes: torch.Tensor  # (N,)
    boxes: torch.Tensor  # (N, 4) XYXY in input-image pixels
    mask_probs: torch.Tensor  # (N, M, M) box-relative mask probabilities
    feat_masks: torch.Tensor  # (N, H', W') soft masks at propagation-feature resolution
    class_probs: Optional[torch.Tensor]  # (N, K) class probabilities, None if not available


def detect_frame(model, frame: dict, score_thresh: float, topk: int, nms_thresh: float = 1.0):
    """One backbone pass and the frame-level detections of one frame.

    Runs ``preprocess_image -> backbone -> proposal_generator -> roi_heads`` of a MaskProp model
    (its Mask R-CNN part; no propagation), keeps detections with score >= ``score_thresh``, then
    (``nms_thresh < 1``) removes, across classes, every detection whose box IoU with a
    higher-scoring one exceeds ``nms_thresh`` (detectron2's NMS is per class: an object the
    classifier is unsure about comes out once per likely class, and in a video each copy would
    start a track of its own), and keeps at most ``topk`` (highest scores). Shared by
    :class:`VideoInference` and the per-frame baseline, so both see exactly the same detections.

    The ROI heads run in their two inference steps (what ``roi_heads(...)`` does in eval mode):
    the box branch, then, on the kept detections only, the mask branch
    (``forward_with_given_boxes``). A mask depends only on its own box, so the result is the same
    as masking every box-branch detection (up to ``TEST.DETECTIONS_PER_IMAGE``, 100) and
    filtering afterwards, without that work (a third of the CPU time per frame of the tiny model)
    and its large temporaries, whose size changed every frame and made glibc's heap grow with the
    video length (``benchmarks/video_scaling_cpu.md``).

    Returns:
        (images, features, instances, mask_probs): the ImageList, the backbone features, the kept
        Instances (boxes in input-image pixels) and their (N, M, M) box-relative mask
        probabilities (a (N, 1, 1) box-filling mask when the model has no mask head).
    """
    images = model.preprocess_image([frame])
    features = model.backbone(images.tensor)
    proposals, _ = model.proposal_generator(images, features, None)
    heads = model.roi_heads
    inst = heads._forward_box(features, proposals)[0]
    keep = inst.scores >= score_thresh
    inst = inst[keep]
    if nms_thresh < 1.0 and len(inst) > 1:
        inst = inst[nms(inst.pred_boxes.tensor, inst.scores, nms_thresh)]  # by score
    if len(inst) > topk:
        inst = inst[torch.topk(inst.scores, topk).indices]
    inst = heads.forward_with_given_boxes(features, [inst])[0]
    if inst.has("pred_masks"):
        probs = inst.pred_masks[:, 0]
    else:  # no mask head: the box itself is the mask
        probs = inst.pred_boxes.tensor.new_ones((len(inst), 1, 1))
    return images, features, inst, probs


def paste_at_output_size(mask_probs, boxes, image_size, out_size) -> torch.Tensor:
    """Paste box-relative soft masks of detections made on an (h, w) network input into an
    output canvas of ``out_size`` = (height, width). Returns (N, height, width) float on CPU."""
    height, width = out_size
    h, w = image_size
    scale = boxes.new_tensor([width / w, height / h, width / w, height / h])
    return paste_soft_masks(mask_probs, boxes * scale, (height, width)).cpu()


class VideoInference:
    """Runs MaskProp over a video, one frame at a time (see module docstring).

    Usage::

        vi = VideoInference(cfg, model)
        for out in vi.stream(frames):      # frames: dicts with "image", "height", "width"
            ...                            # out.ids, out.masks of frame out.frame_idx
        instances = vi.video_instances()   # categories and scores, sorted by score
    """

    @configurable
    def __init__(
        self,
        model,
        *,
        half_length: int,
        score_thresh: float = 0.3,
        topk_per_frame: int = 10,
        nms_thresh: float = 1.0,
        match_thresh: float = 0.3,
        mask_thresh: float = 0.5,
        max_instances: int = 100,
        center_mask: str = "detection",
        categories_per_instance: int = 1,
    ):
        """
        Args:
            model: a :class:`maskprop_d2.modeling.MaskProp` (eval mode is set here).
            half_length: T, clips span t-T..t+T.
            score_thresh, topk_per_frame, nms_thresh: which detections become clip tracks
                (see :func:`detect_frame`).
            match_thresh: the ID assignment threshold on q.
            mask_thresh: threshold on the averaged soft masks.
            max_instances: at most this many video instances are reported (by score).
            center_mask: "detection": a track's mask at its own centre frame is the Mask R-CNN
                mask (full resolution); "propagated": the propagation head's output there too.
            categories_per_instance: each video instance is reported with up to this many
                categories (see :class:`CategoryVotes`).
        """
        if center_mask not in ("detection", "propagated"):
            raise ValueError(
                "center_mask must be 'detection' or 'propagated', got {!r}".format(center_mask)
            )
        self.model = model
        self.T = int(half_length)
        self.score_thresh = score_thresh
        self.topk = topk_per_frame
        self.nms_thresh = nms_thresh
        self.match_thresh = match_thresh
        self.mask_thresh = mask_thresh
        self.max_instances = max_instances
        self.center_mask = center_mask
        self.categories_per_instance = categories_per_instance
        self.backbone_calls = 0
        self._reset()

    @classmethod
    def from_config(cls, cfg, model):
        c = cfg.MODEL.MASKPROP.INFERENCE
        return {
            "model": model,
            "half_length": cfg.INPUT.CLIP.HALF_LENGTH,
            "score_thresh": c.SCORE_THRESH,
            "topk_per_frame": c.TOPK_PER_FRAME,
            "nms_thresh": c.NMS_THRESH,
            "match_thresh": c.MATCH_THRESH,
            "mask_thresh": c.MASK_THRESH,
            "max_instances": cfg.TEST.DETECTIONS_PER_VIDEO,
            "center_mask": c.CENTER_MASK,
            "categories_per_instance": c.CATEGORIES_PER_INSTANCE,
        }

    # ------------------------------------------------------------------ state
    def _reset(self):
        self._features: Dict[int, torch.Tensor] = {}  # frame -> (D, H', W') reduced feature
        self._dets: Dict[int, _Detections] = {}
        self._geometry: Dict[int, FrameGeometry] = {}
        self._tracks = ClipTrackAggregator(
            self.T,
            self.match_thresh,
            self.mask_thresh,
            self.model.roi_heads.num_classes,
            self.categories_per_instance,
        )

    # ------------------------------------------------------------------ per-frame work
    @property
    def _heads(self):
        return self.model.roi_heads

    def _ingest(self, idx: int, frame: dict) -> None:
        """Backbone (once), detections and the reduced propagation feature of one frame."""
        images, features, inst, probs = detect_frame(
            self.model, frame, self.score_thresh, self.topk, self.nms_thresh
        )
        self.backbone_calls += 1
        reduced = self._heads.reduce_prop_features(features)[0]
        stride = self._heads.mask_prop_stride
        boxes = inst.pred_boxes.tensor
        feat_masks = paste_soft_masks(probs, boxes / stride, reduced.shape[-2:])
        self._features[idx] = reduced
        class_probs = inst.class_probs if inst.has("class_probs") else None
        self._dets[idx] = _Detections(
            inst.scores, inst.pred_classes, boxes, probs, feat_masks, class_probs
        )
        h, w = images.image_sizes[0]
        out_size = (int(frame.get("height", h)), int(frame.get("width", w)))
        geo = FrameGeometry((h, w), out_size, stride)
        self._geometry[idx] = geo
        self._tracks.set_geometry(idx, geo)

    def _process_clip(self, t: int, last: int) -> None:
        """Propagate frame t's detections to max(0, t-T)..last and assign their IDs."""
        frames = range(max(0, t - self.T), last + 1)
        det = self._dets.pop(t)
        geo = self._geometry.pop(t)
        n, nf = len(det.scores), len(frames)
        if n == 0:
            tracks = det.feat_masks.new_zeros((0, nf) + det.feat_masks.shape[-2:])
        else:
            feats = torch.stack([self._features[f] for f in frames])  # (F, D, H', W')
            src = self._features[t][None].expand_as(feats)
            # rows ordered (frame, instance): row f*n + i is instance i propagated to frames[f]
            masks = det.feat_masks.repeat(nf, 1, 1)
            pair_index = torch.arange(nf, device=masks.device).repeat_interleave(n)
            logits = self._heads.propagate(src, feats, masks, pair_index)
            tracks = logits.sigmoid().view(nf, n, *logits.shape[-2:]).transpose(0, 1)
        center = None
        if self.center_mask == "detection":
            probs, boxes = det.mask_probs, det.boxes

            def center():  # pasted at full resolution only when frame t is emitted
                return paste_at_output_size(probs, boxes, geo.image_size, geo.out_size)

        self._tracks.add_clip(t, frames, tracks, det.classes, det.scores, center, det.class_probs)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def stream(self, frames: Iterable[dict]) -> Iterator[FrameOutput]:
        """Yield one FrameOutput per input frame, in order, as soon as it is final.

        Args:
            frames: iterable of dicts with "image" ((3, H, W) tensor in the model's input format)
                and optionally "height"/"width" (the output size; default: the image size).
        """
        self.model.eval()
        self._reset()
        T = self.T
        n = 0
        for frame in frames:
            tau = n
            n += 1
            self._ingest(tau, frame)
            t = tau - T
            if t >= 0:
                self._process_clip(t, last=tau)
                self._features.pop(t - T, None)  # no later clip reaches back to t - T
                if t - T >= 0:
                    yield self._tracks.emit(t - T)
        for t in range(max(0, n - T), n):
            self._process_clip(t, last=n - 1)
        for tau in range(max(0, n - 2 * T), n):
            yield self._tracks.emit(tau)
        self._features.clear()

    def current_instance(self, instance_id: int) -> Optional[VideoInstance]:
        """Category and score of an ID from the tracks seen so far (None if unknown)."""
        return self._tracks.votes.get(instance_id)

    def video_instances(self) -> List[VideoInstance]:
        """All video instances of the last streamed video, by decreasing score (at most
        ``max_instances``); see :class:`CategoryVotes`."""
        return self._tracks.votes.ranked(self.max_instances)
