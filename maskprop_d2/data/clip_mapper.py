"""Mappers from video records (see :mod:`maskprop_d2.data.ytvis`) to model inputs.

Training: :class:`ClipDatasetMapper` turns one video record into one **clip dict**::

    {
      "video_id": int, "height": int, "width": int, "length": int,  # original video size/length
      "frame_ids": List[int],       # original frame indices, sorted ascending, unique
      "center": int,                # position of the centre frame t within frame_ids
      "file_names": List[str],      # one per entry of frame_ids
      "image": List[Tensor],        # (C, H, W) uint8 in INPUT.FORMAT, same H, W for every frame
      "instances": List[Instances], # one per frame, image_size (H, W), aligned track slots
    }

Aligned track slots: the rows of every frame's ``Instances`` are the non-crowd tracks whose
mask is non-empty in the *centre* frame after augmentation, sorted by track id (crowd objects
and tracks absent from the centre frame have no slot). Row k is the same object in every frame:

* ``gt_ids``     int64 (N,): the track id, or -1 where the object is absent in that frame
  (not annotated there, or its mask is empty after the transforms, e.g. cropped out);
* ``gt_classes`` int64 (N,): the contiguous category, identical in every frame;
* ``gt_boxes``   Boxes (N, 4) XYXY: tight box of the transformed mask, all zeros where absent;
* ``gt_masks``   BitMasks (N, H, W) bool: all False where absent.

The centre frame's rows all have ``gt_ids >= 0``. A clip may have N = 0 rows.

One augmentation is sampled per clip (on the centre frame) and the resulting transforms are
applied to every frame; colour jitter factors are likewise sampled once per clip. All randomness
comes from numpy's global RNG (as in detectron2's augmentations); mappers hold no state between
calls.

Inference: :class:`VideoInferenceMapper` returns ``{"video_id", "height", "width", "length",
"file_names", "frames": VideoFrames}``; :class:`VideoFrames` reads and resizes frames on demand.
"""
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, Instances

from ..utils.masks import boxes_from_masks
from ..utils.rle import decode_segmentation

__all__ = [
    "ClipDatasetMapper",
    "FrameReadError",
    "VideoInferenceMapper",
    "VideoFrames",
    "sample_clip_frames",
]

logger = logging.getLogger(__name__)

_GRAY_WEIGHTS = {"RGB": (0.299, 0.587, 0.114), "BGR": (0.114, 0.587, 0.299)}


def sample_clip_frames(
    center: int, length: int, half_length: int, num_sampled: int, sampling: str
) -> List[int]:
    """Frame indices of a clip: the centre plus up to ``num_sampled`` frames of [t-T, t+T].

    Frames are drawn without replacement from the window clamped to [0, length-1]; "uniform"
    takes a random subset, "nearest" the closest frames (ties broken at random). Sorted.
    """
    lo, hi = max(0, center - half_length), min(length - 1, center + half_length)
    others = np.array([i for i in range(lo, hi + 1) if i != center], dtype=np.int64)
    k = min(max(num_sampled, 0), len(others))
    if k == 0:
        return [center]
    if sampling == "uniform":
        chosen = np.random.choice(others, size=k, replace=False)
    elif sampling == "nearest":
        dist = np.abs(others - center) + np.random.uniform(0.0, 0.5, size=len(others))
        chosen = others[np.argsort(dist, kind="stable")[:k]]
    else:
        raise ValueError("unknown clip sampling {!r} (use 'uniform' or 'nearest')".format(sampling))
    return sorted([center] + [int(i) for i in chosen])


class FrameReadError(ValueError):
    """A frame file that cannot be decoded or has the wrong size (the message names it)."""

    def __init__(self, file_name: str, message: str):
        self.file_name = file_name
        super().__init__(message)


def _read_frame(file_name: str, image_format: str, height: int, width: int, video_id):
    try:
        image = utils.read_image(file_name, format=image_format)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001  (PIL raises OSError, ValueError, SyntaxError, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise FrameReadError(file_name, "frame {} of video {} cannot be decoded ({}: {})".format(
            file_name, video_id, type(e).__name__, msg[:200])) from None
    if image.shape[0] != height or image.shape[1] != width:
        raise FrameReadError(
            file_name,
            "frame {} of video {} has size {}x{} (w x h), but the video record says {}x{}".format(
                file_name, video_id, image.shape[1], image.shape[0], width, height
            ),
        )
    return image


class ClipDatasetMapper:
    """Training mapper: video record -> clip dict with aligned track slots (see module doc)."""

    @configurable
    def __init__(
        self,
        *,
        is_train: bool,
        augmentations: List,
        image_format: str,
        half_length: int,
        num_sampled_frames: int,
        sampling: str = "uniform",
        center_requires_annotation: bool = True,
        color_jitter: Optional[Dict[str, float]] = None,
    ):
        """
        Args:
            augmentations: detectron2 Augmentations, sampled once per clip on the centre frame.
            half_length: T, the clip window is [t-T, t+T].
            num_sampled_frames: K, frames sampled from the window besides the centre.
            sampling: "uniform" or "nearest".
            center_requires_annotation: centre frames must have a non-crowd object (falls back
                to any frame for videos without one).
            color_jitter: None, or {"brightness", "contrast", "saturation"}: relative ranges x,
                each factor drawn once per clip from [max(0, 1-x), 1+x]; and optionally
                "channel_shuffle": the probability that a clip's colour channels are permuted
                (one random permutation per clip, the same for every frame).
        """
        if sampling not in ("uniform", "nearest"):
            raise ValueError(
                "unknown clip sampling {!r} (use 'uniform' or 'nearest')".format(sampling)
            )
        if half_length < 0 or num_sampled_frames < 0:
            raise ValueError("half_length and num_sampled_frames must be >= 0")
        if color_jitter is not None:
            known = {"brightness", "contrast", "saturation", "channel_shuffle"}
            unknown = set(color_jitter) - known
            if unknown:
                raise ValueError("unknown colour jitter keys {}".format(sorted(unknown)))
            if color_jitter.get("saturation", 0) > 0 and image_format not in _GRAY_WEIGHTS:
                raise ValueError("saturation jitter needs image_format RGB or BGR")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.half_length = int(half_length)
        self.num_sampled_frames = int(num_sampled_frames)
        self.sampling = sampling
        self.center_requires_annotation = center_requires_annotation
        self.color_jitter = dict(color_jitter) if color_jitter else None
        logger.info(
            "[ClipDatasetMapper] T=%d K=%d sampling=%s augmentations: %s, colour jitter: %s",
            self.half_length, self.num_sampled_frames, sampling, augmentations, self.color_jitter,
        )

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        augs = utils.build_augmentation(cfg, is_train)
        if cfg.INPUT.CROP.ENABLED and is_train:
            augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
        jitter = None
        if is_train and cfg.INPUT.COLOR_JITTER.ENABLED:
            jitter = {
                "brightness": cfg.INPUT.COLOR_JITTER.BRIGHTNESS,
                "contrast": cfg.INPUT.COLOR_JITTER.CONTRAST,
                "saturation": cfg.INPUT.COLOR_JITTER.SATURATION,
                "channel_shuffle": cfg.INPUT.COLOR_JITTER.CHANNEL_SHUFFLE,
            }
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "half_length": cfg.INPUT.CLIP.HALF_LENGTH,
            "num_sampled_frames": cfg.INPUT.CLIP.NUM_SAMPLED_FRAMES,
            "sampling": cfg.INPUT.CLIP.SAMPLING,
            "center_requires_annotation": cfg.INPUT.CLIP.CENTER_REQUIRES_ANNOTATION,
            "color_jitter": jitter,
        }

    # ------------------------------------------------------------------ sampling
    def _choose_center(self, annotations: Sequence[Sequence[dict]], length: int) -> int:
        candidates = list(range(length))
        if self.center_requires_annotation:
            annotated = [
                f for f in range(length) if any(o.get("iscrowd", 0) == 0 for o in annotations[f])
            ]
            if annotated:
                candidates = annotated
        return int(candidates[np.random.randint(len(candidates))])

    def _sample_jitter(self) -> Optional[Dict[str, float]]:
        if not self.color_jitter:
            return None
        factors = {}
        for key in ("brightness", "contrast", "saturation"):
            x = float(self.color_jitter.get(key, 0.0))
            factors[key] = float(np.random.uniform(max(0.0, 1.0 - x), 1.0 + x)) if x > 0 else 1.0
        p = float(self.color_jitter.get("channel_shuffle", 0.0))
        factors["channels"] = (
            [int(c) for c in np.random.permutation(3)] if p > 0 and np.random.rand() < p else None
        )
        return factors

    def _apply_jitter(self, image: np.ndarray, factors: Dict[str, float]) -> np.ndarray:
        """Channel permutation, brightness, contrast (vs. the frame's mean gray), saturation (vs.
        its gray image)."""
        if factors.get("channels") is not None and image.ndim == 3 and image.shape[2] == 3:
            image = image[:, :, factors["channels"]]
        img = image.astype(np.float32)
        weights = _GRAY_WEIGHTS.get(self.image_format)

        def gray(x):
            if weights is None or x.ndim != 3 or x.shape[2] != 3:
                return x.mean(axis=2, keepdims=True) if x.ndim == 3 else x
            return (x @ np.asarray(weights, dtype=np.float32))[..., None]

        if factors["brightness"] != 1.0:
            img = np.clip(img * factors["brightness"], 0, 255)
        if factors["contrast"] != 1.0:
            c = factors["contrast"]
            img = np.clip(img * c + float(gray(img).mean()) * (1 - c), 0, 255)
        if factors["saturation"] != 1.0:
            s = factors["saturation"]
            img = np.clip(img * s + gray(img) * (1 - s), 0, 255)
        return np.round(img).astype(np.uint8)

    # ------------------------------------------------------------------ mapping
    def _read_clip(self, record: dict, frame_ids: List[int], center_pos: int):
        """Read the clip's frames with one augmentation sampled on the centre frame.

        Returns (images, transforms): images a list of HxWx3 uint8 arrays in ``frame_ids``
        order, all of the centre frame's size after the transforms.
        """
        height, width = record["height"], record["width"]
        vid = record.get("video_id")
        center = frame_ids[center_pos]
        images = [None] * len(frame_ids)
        aug_input = T.AugInput(
            _read_frame(record["file_names"][center], self.image_format, height, width, vid)
        )
        transforms = self.augmentations(aug_input)
        images[center_pos] = aug_input.image
        for pos, f in enumerate(frame_ids):
            if pos != center_pos:
                image = _read_frame(record["file_names"][f], self.image_format, height, width, vid)
                images[pos] = transforms.apply_image(image)
        out_h, out_w = images[center_pos].shape[:2]
        for pos, image in enumerate(images):
            if image.shape[:2] != (out_h, out_w):
                raise RuntimeError(
                    "frame {} of video {} has size {} after the clip transforms, centre frame "
                    "{}".format(frame_ids[pos], vid, image.shape[:2], (out_h, out_w))
                )
        return images, transforms

    @staticmethod
    def _center_tracks(objs: Sequence[dict], vid, center: int) -> Dict[int, dict]:
        """The centre frame's non-crowd annotations by track id (a track twice is an error)."""
        center_objs = {}
        for obj in objs:
            if obj.get("iscrowd", 0) == 0:
                if obj["id"] in center_objs:
                    raise ValueError(
                        "video {}: track {} twice in frame {}".format(vid, obj["id"], center)
                    )
                center_objs[obj["id"]] = obj
        return center_objs

    @staticmethod
    def _frame_masks(objs: Sequence[dict], track_ids: List[int], transforms, record: dict,
                     frame: int, out_hw) -> np.ndarray:
        """Masks (T, H', W') bool of ``track_ids`` in one frame after the clip transforms.

        A track absent from the frame, or without a segmentation, has an all-False mask.
        """
        height, width = record["height"], record["width"]
        by_id = {o["id"]: o for o in objs}
        masks = np.zeros((len(track_ids), out_hw[0], out_hw[1]), dtype=bool)
        for k, tid in enumerate(track_ids):
            obj = by_id.get(tid)
            if obj is None or obj.get("segmentation") is None:
                continue
            try:
                m = decode_segmentation(obj["segmentation"], height, width)
            except ValueError as e:
                msg = "video {}, frame {}, track {}: {}".format(
                    record.get("video_id"), frame, tid, e
                )
                raise ValueError(msg) from e
            masks[k] = transforms.apply_segmentation(m) > 0
        return masks

    @staticmethod
    def _clip_instances(all_masks: List[np.ndarray], classes: torch.Tensor, ids: torch.Tensor,
                        out_hw) -> List[Instances]:
        """One Instances per frame from masks (T, H', W'); a track absent there gets id -1."""
        instances = []
        for masks in all_masks:
            masks_t = torch.from_numpy(masks)
            present = masks_t.any(dim=2).any(dim=1)
            inst = Instances(tuple(out_hw))
            inst.gt_ids = torch.where(present, ids, torch.full_like(ids, -1))
            inst.gt_classes = classes.clone()
            inst.gt_boxes = Boxes(boxes_from_masks(masks_t))
            inst.gt_masks = BitMasks(masks_t)
            instances.append(inst)
        return instances

    def __call__(self, record: dict) -> dict:
        if "annotations" not in record:
            raise ValueError(
                "video {} has no 'annotations': ClipDatasetMapper needs a split with ground "
                "truth (use VideoInferenceMapper for inference)".format(record.get("video_id"))
            )
        annotations = record["annotations"]
        length = len(record["file_names"])
        if len(annotations) != length:
            raise ValueError(
                "video {}: {} annotation lists for {} frames".format(
                    record.get("video_id"), len(annotations), length
                )
            )
        height, width = record["height"], record["width"]
        vid = record.get("video_id")

        center = self._choose_center(annotations, length)
        frame_ids = sample_clip_frames(
            center, length, self.half_length, self.num_sampled_frames, self.sampling
        )
        center_pos = frame_ids.index(center)

        images, transforms = self._read_clip(record, frame_ids, center_pos)
        out_hw = images[center_pos].shape[:2]

        jitter = self._sample_jitter()
        if jitter is not None:
            images = [self._apply_jitter(im, jitter) for im in images]

        # per-frame masks of the centre frame's non-crowd tracks; those empty after the
        # transforms on the centre frame are dropped before the other frames are decoded
        center_objs = self._center_tracks(annotations[center], vid, center)
        track_ids = sorted(center_objs)
        all_masks = [None] * len(frame_ids)
        all_masks[center_pos] = self._frame_masks(
            annotations[center], track_ids, transforms, record, center, out_hw
        )
        keep = all_masks[center_pos].any(axis=(1, 2))
        track_ids = [t for t, k in zip(track_ids, keep, strict=True) if k]
        all_masks[center_pos] = all_masks[center_pos][keep]
        for pos, f in enumerate(frame_ids):
            if pos != center_pos:
                all_masks[pos] = self._frame_masks(
                    annotations[f], track_ids, transforms, record, f, out_hw
                )

        classes = torch.tensor(
            [center_objs[t]["category_id"] for t in track_ids], dtype=torch.int64
        )
        ids = torch.tensor(track_ids, dtype=torch.int64)
        instances = self._clip_instances(all_masks, classes, ids, out_hw)

        return {
            "video_id": vid,
            "height": height,
            "width": width,
            "length": length,
            "frame_ids": frame_ids,
            "center": center_pos,
            "file_names": [record["file_names"][f] for f in frame_ids],
            "image": [
                torch.as_tensor(np.ascontiguousarray(im.transpose(2, 0, 1))) for im in images
            ],
            "instances": instances,
        }


class VideoFrames:
    """Lazy, re-iterable sequence of a video's frames for inference.

    Item i is ``{"image": Tensor (C, H', W') in image_format, "height", "width" (original),
    "frame_idx": i, "file_name"}``, read from disk when accessed. The transform is sampled once
    (on the first frame read) and reused for every frame, so all frames get the same resize.
    """

    def __init__(self, file_names: Sequence[str], height: int, width: int, augmentations,
                 image_format: str, video_id=None):
        self.file_names = list(file_names)
        self.height, self.width = height, width
        self.augmentations = augmentations
        self.image_format = image_format
        self.video_id = video_id
        self._transforms = None

    def __len__(self) -> int:
        return len(self.file_names)

    def __getitem__(self, idx: int) -> dict:
        if not isinstance(idx, (int, np.integer)):
            raise TypeError("VideoFrames indices must be integers")
        n = len(self)
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError("frame {} out of range for a video of {} frames".format(idx, n))
        file_name = self.file_names[idx]
        image = _read_frame(file_name, self.image_format, self.height, self.width, self.video_id)
        if self._transforms is None:
            aug_input = T.AugInput(image)
            self._transforms = T.AugmentationList(self.augmentations)(aug_input)
            image = aug_input.image
        else:
            image = self._transforms.apply_image(image)
        return {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": self.height,
            "width": self.width,
            "frame_idx": int(idx),
            "file_name": file_name,
        }

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class VideoInferenceMapper:
    """Inference mapper: video record -> ``{"video_id", "height", "width", "length",
    "file_names", "frames": VideoFrames}`` (annotations dropped, frames read lazily)."""

    @configurable
    def __init__(self, *, is_train: bool = False, augmentations: List, image_format: str):
        self.is_train = is_train
        self.augmentations = list(augmentations)
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg, is_train: bool = False):
        return {
            "is_train": is_train,
            "augmentations": [
                T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")
            ],
            "image_format": cfg.INPUT.FORMAT,
        }

    def __call__(self, record: dict) -> dict:
        file_names = list(record["file_names"])
        return {
            "video_id": record.get("video_id"),
            "height": record["height"],
            "width": record["width"],
            "length": record.get("length", len(file_names)),
            "file_names": file_names,
            "frames": VideoFrames(
                file_names, record["height"], record["width"], self.augmentations,
                self.image_format, video_id=record.get("video_id"),
            ),
        }
