"""The MaskProp meta-architecture: Mask R-CNN on clip centre frames + mask propagation."""

from typing import Dict, List, NamedTuple

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import ImageList, Instances
from torchvision.ops import nms

from .roi_heads import ClipTargets

__all__ = ["MaskProp", "MaskTrackRCNN", "FrameDetections"]


class FrameDetections(NamedTuple):
    """What :meth:`MaskProp.detect_frame` returns for one frame.

    Attributes:
        images: the preprocessed (padded) frame, an ImageList of one image of size (h, w).
        features: the backbone features, name -> (1, C, h', w').
        instances: the kept detections, boxes in input-image pixels: ``pred_boxes`` (N, 4),
            ``scores`` (N,), ``pred_classes`` (N,), ``class_probs`` (N, K), ``pred_masks``
            (N, 1, M, M) when the model has a mask head.
        mask_probs: (N, M, M) box-relative mask probabilities (a (N, 1, 1) box-filling mask when
            the model has no mask head).
    """

    images: ImageList
    features: Dict[str, torch.Tensor]
    instances: Instances
    mask_probs: torch.Tensor


def _index_images(images: ImageList, idx: List[int]) -> ImageList:
    return ImageList(images.tensor[idx], [images.image_sizes[i] for i in idx])


@META_ARCH_REGISTRY.register()
class MaskProp(GeneralizedRCNN):
    """GeneralizedRCNN whose ROI heads carry a mask propagation branch.

    Training input: clip dicts of :class:`maskprop_d2.data.ClipDatasetMapper` (``image``: list of
    (3, H, W) frames, ``instances``: list of per-frame Instances with aligned track slots,
    ``center``: the centre frame's index). All frames of all clips go through the backbone in
    one batch; the Mask R-CNN losses are computed on the centre frames (or on every frame with
    ``MODEL.MASKPROP.DETECTION_LOSS_ON_ALL_FRAMES``); ``loss_mask_prop`` propagates the centre
    frame's instances to every frame of the clip.

    Inference: a dict with ``image`` (one frame) runs per-frame Mask R-CNN, exactly like
    GeneralizedRCNN. Video trackers (:mod:`maskprop_d2.tracking`) call :meth:`detect_frame` once per
    frame and the propagation branch of the ROI heads (``reduce_prop_features``, ``propagate``), so
    that each frame's backbone runs once.
    """

    @configurable
    def __init__(
        self,
        *,
        detection_loss_on_all_frames: bool = False,
        train_propagation_only: bool = False,
        **kwargs,
    ):
        """
        Args:
            detection_loss_on_all_frames: Mask R-CNN losses on every frame of a clip, not only
                on its centre frame.
            train_propagation_only: a propagation stage on a frozen detector: only
                ``roi_heads.mask_prop_head`` trains (``loss_mask_prop`` alone), the rest stays
                frozen and in eval mode.
        """
        super().__init__(**kwargs)
        if not hasattr(self.roi_heads, "propagation_losses"):
            raise ValueError(
                "MaskProp needs ROI heads with a propagation branch (MODEL.ROI_HEADS.NAME: "
                "MaskPropROIHeads), got {}".format(type(self.roi_heads).__name__)
            )
        self.detection_loss_on_all_frames = detection_loss_on_all_frames
        self.train_propagation_only = train_propagation_only
        self._trainable = None  # name of the only trainable submodule (frozen stages)
        if train_propagation_only:
            self._freeze_all_but("roi_heads.mask_prop_head")

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        ret["detection_loss_on_all_frames"] = cfg.MODEL.MASKPROP.DETECTION_LOSS_ON_ALL_FRAMES
        ret["train_propagation_only"] = cfg.MODEL.MASKPROP.TRAIN_PROPAGATION_ONLY
        return ret

    def _freeze_all_but(self, module_name: str) -> None:
        """Freeze every parameter outside submodule ``module_name``; in training mode the frozen
        parts stay in eval mode (batch-norm statistics included), see :meth:`train`."""
        self._trainable = module_name
        prefix = module_name + "."
        for name, p in self.named_parameters():
            if not name.startswith(prefix):
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        """With a frozen stage, training mode reaches only the trainable submodule (and the ROI
        heads' flag, which selects their training path); everything else stays in eval mode."""
        super().train(mode)
        if mode and self._trainable is not None:
            for m in self.modules():
                m.training = False
            self.training = True
            self.roi_heads.training = True
            self.get_submodule(self._trainable).train()
        return self

    def forward(self, batched_inputs: List[Dict]):
        if not self.training:
            if "frames" in batched_inputs[0]:
                raise ValueError(
                    "video dicts ('frames') go through maskprop_d2.inference.VideoPredictor, "
                    "not the model's forward"
                )
            return self.inference(batched_inputs)
        if not isinstance(batched_inputs[0].get("image"), (list, tuple)):
            return super().forward(batched_inputs)  # plain per-image training (e.g. COCO)
        return self._forward_clips(batched_inputs)

    @torch.no_grad()
    def detect_frame(
        self, frame: Dict, score_thresh: float, topk: int, nms_thresh: float = 1.0
    ) -> FrameDetections:
        """One backbone pass and the frame-level detections of one frame (eval mode).

        Runs ``preprocess_image -> backbone -> proposal_generator`` and the ROI heads' box
        branch, keeps detections with score >= ``score_thresh``, then (``nms_thresh < 1``)
        removes, across classes, every detection whose box IoU with a higher-scoring one exceeds
        ``nms_thresh`` (detectron2's NMS is per class: an object the classifier is unsure about
        comes out once per likely class, and in a video each copy would start a track of its
        own), keeps at most ``topk`` (highest scores), and only then runs the mask branch on the
        kept boxes (``forward_with_given_boxes``).

        A mask depends only on its own box, so the result is the same as masking every box
        detection (up to ``TEST.DETECTIONS_PER_IMAGE``) and filtering afterwards, without that
        work and its large temporaries (whose size changes every frame and made glibc's heap
        grow with the video length).

        Args:
            frame: a dict with ``image``: (3, H, W) tensor in the model's input format.
        """
        if self.training:
            raise RuntimeError("detect_frame is an inference method; call eval() first")
        images = self.preprocess_image([frame])
        features = self.backbone(images.tensor)
        proposals, _ = self.proposal_generator(images, features, None)
        heads = self.roi_heads
        inst = heads.detect_boxes(features, proposals)[0]
        inst = inst[inst.scores >= score_thresh]
        if nms_thresh < 1.0 and len(inst) > 1:
            inst = inst[nms(inst.pred_boxes.tensor, inst.scores, nms_thresh)]  # by score
        if len(inst) > topk:
            inst = inst[torch.topk(inst.scores, topk).indices]
        inst = heads.forward_with_given_boxes(features, [inst])[0]
        if inst.has("pred_masks"):
            probs = inst.pred_masks[:, 0]
        else:  # no mask head: the box itself is the mask
            probs = inst.pred_boxes.tensor.new_ones((len(inst), 1, 1))
        return FrameDetections(images, features, inst, probs)

    def _flatten_clips(self, clips: List[Dict]):
        """Clip dicts -> (frame dicts, per-frame GT Instances on the model's device, one
        ClipTargets per clip), frames of all clips in one flat batch."""
        frames, gt_instances, targets = [], [], []
        for clip in clips:
            n = len(clip["image"])
            if len(clip["instances"]) != n:
                raise ValueError(
                    "clip of video {}: {} images but {} instances".format(
                        clip.get("video_id"), n, len(clip["instances"])
                    )
                )
            start = len(frames)
            frames.extend({"image": im} for im in clip["image"])
            insts = [x.to(self.device) for x in clip["instances"]]
            gt_instances.extend(insts)
            ids = clip.get("frame_ids")
            deltas = None if ids is None else [abs(i - ids[clip["center"]]) for i in ids]
            targets.append(ClipTargets(range(start, start + n), clip["center"], insts, deltas))
        return frames, gt_instances, targets

    def _forward_clips(self, clips: List[Dict]) -> Dict[str, torch.Tensor]:
        frames, gt_instances, targets = self._flatten_clips(clips)
        if self.train_propagation_only:
            with torch.no_grad():
                features = self.backbone(self.preprocess_image(frames).tensor)
            return self.roi_heads.propagation_losses(features, targets)
        images = self.preprocess_image(frames)
        features = self.backbone(images.tensor)

        if self.detection_loss_on_all_frames:
            det_idx = list(range(len(frames)))
        else:
            det_idx = [t.frame_positions[t.center] for t in targets]
        det_images = _index_images(images, det_idx)
        det_features = {k: v[det_idx] for k, v in features.items()}
        # Slots absent in a frame (gt_ids == -1) are not detection targets there.
        det_gt = [gt_instances[i][gt_instances[i].gt_ids >= 0] for i in det_idx]

        proposals, proposal_losses = self.proposal_generator(det_images, det_features, det_gt)
        _, detector_losses = self.roi_heads(det_images, det_features, proposals, det_gt)
        losses = {}
        losses.update(detector_losses)
        losses.update(proposal_losses)
        losses.update(self.roi_heads.propagation_losses(features, targets))
        return losses


@META_ARCH_REGISTRY.register()
class MaskTrackRCNN(MaskProp):
    """A trained MaskProp model + MaskTrack R-CNN's tracking head, trained on top of it.

    The detector (backbone, RPN, box and mask heads) and the propagation head are frozen: only
    the tracking head (``roi_heads.track_head``) has trainable parameters, and the frozen parts
    stay in eval mode (batch-norm statistics included) during training. The comparison between
    trackers then runs every tracker on identical detections, and the head trains in minutes.
    Load the MaskProp weights with ``MODEL.WEIGHTS`` (the tracking head starts from its
    initialisation: the checkpointer reports its keys as missing).

    Training input: MaskProp's clip dicts. Each clip gives one (key, reference) pair: the centre
    frame and one other frame of the clip drawn at random (the centre itself in a one-frame
    clip). Key-frame boxes are the RPN's proposals, sampled and matched to the GT as the box
    head's are (``label_and_sample_proposals``), positives only; the reference frame's boxes
    are its GT boxes. Loss: ``loss_track`` (:meth:`MaskTrackROIHeads.tracking_losses`).

    Inference: as MaskProp; the ``tracking_head`` tracker calls :meth:`MaskProp.detect_frame` and
    ``roi_heads.embed``.
    """

    @configurable
    def __init__(self, **kwargs):
        if kwargs.get("train_propagation_only"):
            raise ValueError(
                "MODEL.MASKPROP.TRAIN_PROPAGATION_ONLY trains MaskProp's propagation head; "
                "MaskTrackRCNN trains only its tracking head"
            )
        super().__init__(**kwargs)
        if not hasattr(self.roi_heads, "tracking_losses"):
            raise ValueError(
                "MaskTrackRCNN needs ROI heads with a tracking head (MODEL.ROI_HEADS.NAME: "
                "MaskTrackROIHeads), got {}".format(type(self.roi_heads).__name__)
            )
        self._freeze_all_but("roi_heads.track_head")

    def forward(self, batched_inputs: List[Dict]):
        if self.training and not isinstance(batched_inputs[0].get("image"), (list, tuple)):
            raise ValueError("MaskTrackRCNN trains on clips (maskprop_d2.data.ClipDatasetMapper)")
        return super().forward(batched_inputs)

    def _forward_clips(self, clips: List[Dict]) -> Dict[str, torch.Tensor]:
        frames, gt_instances, targets = self._flatten_clips(clips)
        key_pos, ref_pos = [], []
        for t in targets:
            key = t.frame_positions[t.center]
            others = [p for p in t.frame_positions if p != key] or [key]
            key_pos.append(key)
            ref_pos.append(others[int(torch.randint(len(others), ()))])
        with torch.no_grad():
            images = self.preprocess_image(frames)
            features = self.backbone(images.tensor)
            key_images = _index_images(images, key_pos)
            key_features = {k: v[key_pos] for k, v in features.items()}
            key_gt = [gt_instances[i][gt_instances[i].gt_ids >= 0] for i in key_pos]
            proposals, _ = self.proposal_generator(key_images, key_features, None)
            proposals = self.roi_heads.label_and_sample_proposals(proposals, key_gt)
        ref_gt = [gt_instances[i][gt_instances[i].gt_ids >= 0] for i in ref_pos]
        return self.roi_heads.tracking_losses(features, proposals, key_pos, ref_gt, ref_pos)
