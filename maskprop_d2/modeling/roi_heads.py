"""ROI heads with MaskProp's mask propagation branch."""

from typing import Dict, List, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import (
    ROI_HEADS_REGISTRY,
    FastRCNNOutputLayers,
    StandardROIHeads,
)
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from ..utils.masks import boxes_from_masks, soft_iou
from .mask_ops import masks_to_feature_resolution, paste_soft_masks
from .prop_loss import mask_prop_loss
from .propagation import BOX_MASK_THRESH, build_mask_prop_head, masks_in_windows
from .track_head import build_track_head, match_logits, track_embedding_loss

__all__ = ["MaskPropROIHeads", "MaskTrackROIHeads", "ClipTargets", "ClassProbsOutputLayers"]


class ClassProbsOutputLayers(FastRCNNOutputLayers):
    """FastRCNNOutputLayers whose detections also carry ``class_probs``: (N, K) the softmax class
    probabilities (background dropped) of the proposal each detection came from, so that
    video-level category votes can use the whole distribution. Same parameters and losses;
    detectron2's ``inference`` does the work, its ``predict_probs`` gives the probabilities."""

    def inference(self, predictions, proposals: List[Instances]):
        pred_instances, kept = super().inference(predictions, proposals)
        probs = self.predict_probs(predictions, proposals)  # per image, (R_i, K + 1)
        for inst, p, k in zip(pred_instances, probs, kept, strict=True):
            inst.class_probs = p[k, :-1]
        return pred_instances, kept


class ClipTargets:
    """Where one training clip's frames sit in the flattened frame batch, and their GT.

    Attributes:
        frame_positions: positions of the clip's frames in the batch (time order).
        center: index into ``frame_positions`` of the centre frame.
        instances: per frame, Instances with aligned track slots (``gt_ids``, ``gt_masks``, ...).
        deltas: per frame, its temporal distance |frame id - centre frame id| (None: unknown).
    """

    def __init__(
        self,
        frame_positions: Sequence[int],
        center: int,
        instances: List[Instances],
        deltas: Optional[Sequence[int]] = None,
    ):
        self.frame_positions = list(frame_positions)
        self.center = int(center)
        self.instances = instances
        self.deltas = None if deltas is None else [int(d) for d in deltas]


@ROI_HEADS_REGISTRY.register()
class MaskPropROIHeads(StandardROIHeads):
    """StandardROIHeads + a mask propagation head (``ROI_MASK_PROP_HEAD_REGISTRY``).

    The frame-level branches (box, mask) are unchanged; the propagation head warps instance
    features of a clip's centre frame to its other frames.
    """

    @configurable
    def __init__(
        self,
        *,
        mask_prop_in_feature: str,
        mask_prop_stride: int,
        mask_prop_head: torch.nn.Module,
        mask_prop_loss_weight: float = 1.0,
        mask_prop_bce_weight: float = 0.0,
        train_source_masks: str = "gt",
        train_center_rows: bool = True,
        fine_crops: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if fine_crops and getattr(mask_prop_head, "roi_size", 0) <= 0:
            raise ValueError(
                "MODEL.ROI_MASK_PROP_HEAD.FINE_CROPS needs ROI mode (ROI_SIZE > 0), got ROI_SIZE "
                "= {}".format(getattr(mask_prop_head, "roi_size", 0))
            )
        if train_source_masks not in ("gt", "pred"):
            raise ValueError(
                "MODEL.ROI_MASK_PROP_HEAD.TRAIN_SOURCE_MASKS must be 'gt' or 'pred', got "
                "{!r}".format(train_source_masks)
            )
        if train_source_masks == "pred" and not self.mask_on:
            raise ValueError("TRAIN_SOURCE_MASKS='pred' needs the mask head (MODEL.MASK_ON)")
        self.mask_prop_in_feature = mask_prop_in_feature
        self.mask_prop_stride = int(mask_prop_stride)
        self.mask_prop_head = mask_prop_head
        self.mask_prop_loss_weight = mask_prop_loss_weight
        self.mask_prop_bce_weight = float(mask_prop_bce_weight)
        self.train_source_masks = train_source_masks
        self.train_center_rows = bool(train_center_rows)
        self.fine_crops = bool(fine_crops)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        name = cfg.MODEL.ROI_MASK_PROP_HEAD.IN_FEATURE
        if name not in input_shape:
            raise ValueError(
                "MODEL.ROI_MASK_PROP_HEAD.IN_FEATURE={!r} is not a backbone output; available: "
                "{}".format(name, sorted(input_shape))
            )
        ret.update(
            mask_prop_in_feature=name,
            mask_prop_stride=input_shape[name].stride,
            mask_prop_head=build_mask_prop_head(cfg, input_shape[name]),
            mask_prop_loss_weight=cfg.MODEL.ROI_MASK_PROP_HEAD.LOSS_WEIGHT,
            mask_prop_bce_weight=cfg.MODEL.ROI_MASK_PROP_HEAD.BCE_WEIGHT,
            train_source_masks=cfg.MODEL.ROI_MASK_PROP_HEAD.TRAIN_SOURCE_MASKS,
            train_center_rows=cfg.MODEL.ROI_MASK_PROP_HEAD.TRAIN_CENTER_ROWS,
            fine_crops=cfg.MODEL.ROI_MASK_PROP_HEAD.FINE_CROPS,
        )
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        # The same layers as detectron2's FastRCNNOutputLayers, whose detections also carry
        # class_probs. It takes over the initial weights of the predictor built above, and is
        # built with the RNG state restored, so that a fresh model is initialised exactly as
        # StandardROIHeads would initialise it.
        with torch.random.fork_rng(devices=[]):
            predictor = ClassProbsOutputLayers(cfg, ret["box_head"].output_shape)
        predictor.load_state_dict(ret["box_predictor"].state_dict())
        ret["box_predictor"] = predictor
        return ret

    # ------------------------------------------------------------------ detection
    def detect_boxes(
        self, features: Dict[str, torch.Tensor], proposals: List[Instances]
    ) -> List[Instances]:
        """The box branch alone, at inference: per image, the detections after the box head's
        score threshold and per-class NMS (``pred_boxes``, ``scores``, ``pred_classes`` and
        ``class_probs`` (N, K)), without masks. Masks can then be added to a subset of them with
        :meth:`forward_with_given_boxes`; together the two give what ``forward`` gives in eval
        mode."""
        if self.training:
            raise RuntimeError("detect_boxes is an inference method; call eval() first")
        feats = [features[f] for f in self.box_in_features]
        box_features = self.box_head(self.box_pooler(feats, [x.proposal_boxes for x in proposals]))
        predictions = self.box_predictor(box_features)
        del box_features
        pred_instances, _ = self.box_predictor.inference(predictions, proposals)
        return pred_instances

    # ------------------------------------------------------------------ propagation
    def reduce_prop_features(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """(F, C, H', W') backbone feature -> (F, D, H', W') propagation feature, once per frame."""
        return self.mask_prop_head.reduce(features[self.mask_prop_in_feature])

    def propagate(
        self,
        f_src: torch.Tensor,
        f_dst: torch.Tensor,
        masks: torch.Tensor,
        pair_index: torch.Tensor,
    ) -> torch.Tensor:
        """Propagate instance masks along frame pairs.

        Args:
            f_src, f_dst: (P, D, H', W') reduced features of the P (source, target) frame pairs.
            masks: (N, H', W') source-frame instance masks at feature resolution.
            pair_index: (N,) long, the pair of each row.
        Returns:
            (N, H', W') mask logits in the target frames.
        """
        return self.mask_prop_head(f_src, f_dst, masks, pair_index)

    def propagate_crops(
        self,
        f_src: torch.Tensor,
        f_dst: torch.Tensor,
        src_crops: torch.Tensor,
        windows: torch.Tensor,
        pair_index: torch.Tensor,
    ) -> torch.Tensor:
        """Propagate instance masks given on their windows (ROI mode, ``fine_crops``).

        Args:
            f_src, f_dst: (P, D, H', W') reduced features of the P (source, target) frame pairs.
            src_crops: (N, S, S) source masks sampled on each row's window.
            windows: (N, 4) the windows (x0, y0, x1, y1) in feature pixels (``prop_windows``).
            pair_index: (N,) long, the pair of each row.
        Returns:
            (N, S, S) mask logits on the windows in the target frames.
        """
        head = self.mask_prop_head
        crops, _ = head.forward_crops(
            f_src, f_dst, None, pair_index, src_crops=src_crops, windows=windows
        )
        return crops

    def prop_windows(self, boxes: torch.Tensor, feat_hw) -> torch.Tensor:
        """(N, 4) source boxes XYXY in image pixels -> (N, 4) the head's windows in feature
        pixels (``MaskPropagationHead.roi_windows``)."""
        return self.mask_prop_head.roi_windows(boxes / self.mask_prop_stride, feat_hw)

    def _source_masks(self, features, inst: Instances, frame_pos: int, feat_hw) -> torch.Tensor:
        """(N, H', W') centre-frame masks to propagate: GT, or the mask head's prediction on the
        GT boxes for the GT classes (its inference forward, in eval mode, without gradient)."""
        if self.train_source_masks == "gt" or len(inst) == 0:
            return masks_to_feature_resolution(inst.gt_masks.tensor, feat_hw, self.mask_prop_stride)
        probs = self._predicted_masks(features, inst, frame_pos)
        boxes = inst.gt_boxes.tensor / self.mask_prop_stride
        return paste_soft_masks(probs, boxes, feat_hw)

    def _predicted_masks(self, features, inst: Instances, frame_pos: int) -> torch.Tensor:
        """(N, M, M) the mask head's prediction on the GT boxes of the frame at ``frame_pos`` for
        the GT classes (its inference forward, in eval mode, without gradient)."""
        feats = [features[f][frame_pos : frame_pos + 1] for f in self.mask_in_features]
        pred = Instances(inst.image_size, pred_classes=inst.gt_classes)
        was_training = self.mask_head.training
        self.mask_head.eval()
        try:
            with torch.no_grad():
                x = self.mask_pooler(feats, [inst.gt_boxes])
                return self.mask_head(x, [pred])[0].pred_masks[:, 0]
        finally:
            self.mask_head.train(was_training)

    def propagation_losses(
        self, features: Dict[str, torch.Tensor], clips: List[ClipTargets]
    ) -> Dict[str, torch.Tensor]:
        """``loss_mask_prop``: mean over (centre instance, clip frame) pairs of 1 - soft IoU
        (the centre frame itself left out with ``MODEL.ROI_MASK_PROP_HEAD.TRAIN_CENTER_ROWS``
        off).

        Args:
            features: backbone features of the flattened frame batch, (F, C, H, W) each.
            clips: one ClipTargets per clip.
        """
        reduced = self.reduce_prop_features(features)
        feat_hw = tuple(reduced.shape[-2:])
        stride, size = self.mask_prop_stride, getattr(self.mask_prop_head, "roi_size", 0)
        if self.fine_crops:
            # each centre instance's window (its box + margin) is fixed for the clip; sources
            # and targets are image-resolution masks sampled on it

            def source(clip, inst):
                masks = self._source_masks_image(features, inst, clip)
                box = boxes_from_masks(masks > BOX_MASK_THRESH).to(reduced.dtype)
                win = self.prop_windows(box, feat_hw)
                return masks_in_windows(masks, win, stride, size), win

            def target(inst, win):
                return masks_in_windows(inst.gt_masks.tensor, win, stride, size)

        else:

            def source(clip, inst):
                pos = clip.frame_positions[clip.center]
                return self._source_masks(features, inst, pos, feat_hw), None

            def target(inst, _):
                return masks_to_feature_resolution(inst.gt_masks.tensor, feat_hw, stride)

        rows = self._propagation_rows(clips, source, target)
        if not rows["src_pos"]:
            return {"loss_mask_prop": reduced.sum() * 0.0}
        dev = reduced.device
        f_src = reduced[torch.as_tensor(rows["src_pos"], device=dev)]
        f_dst = reduced[torch.as_tensor(rows["dst_pos"], device=dev)]
        src, pair = torch.cat(rows["src"]).to(dev), torch.cat(rows["pair"]).to(dev)
        if self.fine_crops:
            logits = self.propagate_crops(f_src, f_dst, src, torch.cat(rows["ctx"]).to(dev), pair)
        else:
            logits = self.propagate(f_src, f_dst, src, pair)
        tgt = torch.cat(rows["tgt"]).to(dev)
        loss = mask_prop_loss(logits, tgt, bce_weight=self.mask_prop_bce_weight)
        self.log_soft_iou_by_delta(logits.detach(), tgt, torch.cat(rows["delta"]))
        return {"loss_mask_prop": loss * self.mask_prop_loss_weight}

    def _propagation_rows(self, clips: List[ClipTargets], source, target) -> Dict[str, list]:
        """The rows of ``loss_mask_prop``, one per (centre instance, clip frame), in lists:
        ``src_pos`` / ``dst_pos`` (one batch position per pair), ``src`` (the pair's source
        masks), ``ctx`` (what ``source`` returned with them, e.g. windows), ``tgt``, ``pair``
        and ``delta`` (per row). ``source(clip, centre_instances) -> (masks, ctx)``;
        ``target(frame_instances, ctx) -> masks``."""
        rows: Dict[str, list] = {k: [] for k in ("src_pos", "dst_pos", "src", "ctx", "tgt",
                                                  "pair", "delta")}  # fmt: skip
        for clip in clips:
            center_inst = clip.instances[clip.center]
            n = len(center_inst)
            if n == 0:
                continue
            src, ctx = source(clip, center_inst)
            clip_deltas = clip.deltas or [-1] * len(clip.frame_positions)
            for k, (pos, inst, d) in enumerate(
                zip(clip.frame_positions, clip.instances, clip_deltas, strict=True)
            ):
                if k == clip.center and not self.train_center_rows:
                    continue
                rows["pair"].append(torch.full((n,), len(rows["src_pos"]), dtype=torch.long))
                rows["delta"].append(torch.full((n,), d, dtype=torch.long))
                rows["src_pos"].append(clip.frame_positions[clip.center])
                rows["dst_pos"].append(pos)
                rows["src"].append(src)
                rows["ctx"].append(ctx)
                rows["tgt"].append(target(inst, ctx))
        return rows

    def _source_masks_image(self, features, inst: Instances, clip: ClipTargets) -> torch.Tensor:
        """(N, h, w) centre-frame masks at image resolution: GT, or the mask head's prediction on
        the GT boxes (``TRAIN_SOURCE_MASKS: pred``, pasted at image resolution)."""
        gt = inst.gt_masks.tensor
        if self.train_source_masks == "gt" or len(inst) == 0:
            return gt.float()
        probs = self._predicted_masks(features, inst, clip.frame_positions[clip.center])
        return paste_soft_masks(probs, inst.gt_boxes.tensor, gt.shape[-2:])

    @staticmethod
    def log_soft_iou_by_delta(logits, tgt, deltas) -> None:
        """Training signal of the head: ``prop_siou/d{δ}`` = mean soft IoU and ``prop_hiou/d{δ}``
        = mean hard IoU (prediction > 0.5 against GT > 0.5) of the propagated masks at temporal
        distance δ, over rows whose GT is non-empty (EventStorage).

        ``logits``: (N, h, w) propagated mask logits, ``tgt``: (N, h, w) GT masks, ``deltas``: (N,)
        temporal distance of each row (rows with δ < 0 are skipped). Needs an active
        ``EventStorage``; called by ``propagation_losses``."""
        deltas = deltas.to(tgt.device)  # built on the CPU by propagation_losses
        keep = (deltas >= 0) & (tgt.flatten(1).sum(1) > 0)
        if not keep.any():
            return
        prob, gt = torch.sigmoid(logits[keep].float()), tgt[keep].float()
        siou = soft_iou(prob, gt)
        hiou = soft_iou((prob > 0.5).float(), (gt > 0.5).float())
        d = deltas[keep].to(siou.device)
        storage = get_event_storage()
        for delta in torch.unique(d).tolist():
            storage.put_scalar("prop_siou/d{}".format(delta), float(siou[d == delta].mean()))
            storage.put_scalar("prop_hiou/d{}".format(delta), float(hiou[d == delta].mean()))


@ROI_HEADS_REGISTRY.register()
class MaskTrackROIHeads(MaskPropROIHeads):
    """MaskPropROIHeads + MaskTrack R-CNN's tracking branch (``TRACK_HEAD_REGISTRY``).

    The tracking head embeds boxes from the box branch's pooled ROI features (the same
    ``box_pooler``); everything else is MaskPropROIHeads, so one checkpoint serves MaskProp's
    tracker, the flow and frame-linking baselines and the tracking-head baseline alike.
    """

    @configurable
    def __init__(self, *, track_head: torch.nn.Module, track_loss_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.track_head = track_head
        self.track_loss_weight = track_loss_weight

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        ret.update(cls._init_track_head(cfg, input_shape))
        return ret

    @classmethod
    def _init_track_head(cls, cfg, input_shape):
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        res = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        channels = input_shape[in_features[0]].channels
        shape = ShapeSpec(channels=channels, height=res, width=res)
        return {
            "track_head": build_track_head(cfg, shape),
            "track_loss_weight": cfg.MODEL.TRACK_HEAD.LOSS_WEIGHT,
        }

    def embed(self, features: Dict[str, torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        """(N, D) embeddings of the boxes of every image (concatenated in image order).

        Args:
            features: backbone features, (B, C, H, W) each.
            boxes: B Boxes in input-image pixels.
        """
        feats = [features[f] for f in self.box_in_features]
        return self.track_head(self.box_pooler(feats, boxes))

    def tracking_losses(
        self,
        features: Dict[str, torch.Tensor],
        key_proposals: List[Instances],
        key_positions: Sequence[int],
        ref_instances: List[Instances],
        ref_positions: Sequence[int],
    ) -> Dict[str, torch.Tensor]:
        """``loss_track``: cross-entropy of each positive key-frame proposal over the reference
        frame's instances plus "new object" (:func:`track_embedding_loss`), mean over proposals.

        Args:
            features: backbone features of the flattened frame batch.
            key_proposals: per pair, the key frame's sampled proposals with ``gt_classes`` and
                ``gt_ids`` (as :meth:`label_and_sample_proposals` returns them).
            key_positions, ref_positions: per pair, the key / reference frame's batch position.
            ref_instances: per pair, the reference frame's GT with ``gt_boxes`` and ``gt_ids``.
        """
        pos = [p[p.gt_classes < self.num_classes] for p in key_proposals]
        idx = list(key_positions) + list(ref_positions)
        feats = {k: v[idx] for k, v in features.items()}
        boxes = [p.proposal_boxes for p in pos] + [r.gt_boxes for r in ref_instances]
        emb = self.embed(feats, boxes)
        sizes = [len(b) for b in boxes]
        chunks = emb.split(sizes)
        n_pairs = len(pos)
        losses, correct, total = [], 0, 0
        for k in range(n_pairs):
            key, ref = chunks[k], chunks[n_pairs + k]
            key_ids, ref_ids = pos[k].gt_ids, ref_instances[k].gt_ids
            eq = key_ids[:, None] == ref_ids[None, :]
            slot = torch.arange(1, len(ref_ids) + 1, device=key_ids.device)
            # 0 "new object", or 1 + the reference instance with the same track ID
            targets = (eq.long() * slot).amax(1) if len(ref_ids) else torch.zeros_like(key_ids)
            losses.append(track_embedding_loss(key, ref, targets) * len(key))
            if len(key):
                pred = match_logits(key.detach(), ref.detach()).argmax(1)
                correct += int((pred == targets).sum())
            total += len(key)
        loss = torch.stack(losses).sum() / max(total, 1)
        if total:
            get_event_storage().put_scalar("track_head/accuracy", correct / total)
        return {"loss_track": loss * self.track_loss_weight}
