"""Clip dataset mapper (training) and video inference mapper, on tiny synthetic videos."""
import os
import random

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from maskprop_d2 import add_maskprop_config
from maskprop_d2.data.clip_mapper import (
    ClipDatasetMapper,
    VideoFrames,
    VideoInferenceMapper,
    decode_segmentation,
    sample_clip_frames,
)

H, W = 32, 40


def _rle(mask):
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _obj(tid, cat, mask, iscrowd=0):
    x, y, w, h = mask_util.toBbox(mask_util.encode(np.asfortranarray(mask.astype(np.uint8))))
    return {
        "id": tid, "category_id": cat, "bbox": [float(x), float(y), float(w), float(h)],
        "bbox_mode": BoxMode.XYWH_ABS, "segmentation": _rle(mask), "iscrowd": iscrowd,
    }


def _square(y0, x0, h, w):
    m = np.zeros((H, W), dtype=np.uint8)
    m[y0:y0 + h, x0:x0 + w] = 1
    return m


def make_video(tmp_path, length=6, same_pixels=(), annotated=None, seed=0, video_id=1):
    """A video with noise frames; track 1 moves right, track 2 (at the right edge) is absent in
    frames 2 and 3, track 7 is crowd. ``same_pixels`` frames copy frame 0's pixels.
    ``annotated``: frames that carry objects (default all)."""
    rng = np.random.RandomState(seed)
    d = tmp_path / "v{}".format(video_id)
    d.mkdir(parents=True)
    files, annos, masks = [], [], []
    base = rng.randint(0, 256, size=(H, W, 3), dtype=np.uint8)
    for f in range(length):
        img = base if f in same_pixels else rng.randint(0, 256, size=(H, W, 3), dtype=np.uint8)
        path = str(d / "{:05d}.jpg".format(f))
        cv2.imwrite(path, img)
        files.append(path)
        objs, fm = [], {}
        if annotated is None or f in annotated:
            m1 = _square(4, 2 + 2 * f, 10, 8)
            objs.append(_obj(1, 3, m1))
            fm[1] = m1
            if f not in (2, 3):
                m2 = _square(18, 30, 10, 8)
                objs.append(_obj(2, 0, m2))
                fm[2] = m2
            objs.append(_obj(7, 1, _square(0, 0, 3, 3), iscrowd=1))
        annos.append(objs)
        masks.append(fm)
    record = {
        "file_names": files, "height": H, "width": W, "length": length,
        "video_id": video_id, "annotations": annos,
    }
    return record, masks


def mapper(augs=(), T_=10, K=10, sampling="uniform", jitter=None, center_req=True):
    return ClipDatasetMapper(
        is_train=True, augmentations=list(augs), image_format="BGR", half_length=T_,
        num_sampled_frames=K, sampling=sampling, center_requires_annotation=center_req,
        color_jitter=jitter,
    )


def seeded(fn, seed):
    np.random.seed(seed)
    random.seed(seed)
    return fn()


def orig_image(record, f):
    return utils.read_image(record["file_names"][f], format="BGR")


def check_slots(clip, masks, mask_tfm):
    """Rows follow the centre's tracks; every frame's masks are ``mask_tfm`` of the original."""
    center_f = clip["frame_ids"][clip["center"]]
    ids = clip["instances"][clip["center"]].gt_ids.tolist()
    assert all(i >= 0 for i in ids) and ids == sorted(ids)
    assert 7 not in ids  # crowd: no slot
    classes = clip["instances"][clip["center"]].gt_classes
    for pos, f in enumerate(clip["frame_ids"]):
        inst = clip["instances"][pos]
        assert inst.image_size == tuple(clip["image"][pos].shape[1:])
        assert torch.equal(inst.gt_classes, classes) and inst.gt_classes.dtype == torch.int64
        assert inst.gt_masks.tensor.dtype == torch.bool
        for k, tid in enumerate(ids):
            got = inst.gt_masks.tensor[k].numpy()
            exp = mask_tfm(masks[f][tid]) > 0 if tid in masks[f] else np.zeros_like(got)
            np.testing.assert_array_equal(got, exp, err_msg="frame {} track {}".format(f, tid))
            box = inst.gt_boxes.tensor[k].tolist()
            if exp.any():
                assert inst.gt_ids[k] == tid
                ys, xs = np.nonzero(exp)
                assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            else:
                assert inst.gt_ids[k] == -1 and box == [0, 0, 0, 0]
    return center_f, ids


def test_decode_segmentation_formats():
    m = _square(3, 5, 7, 9)
    rle = mask_util.encode(np.asfortranarray(m))
    unc = {"size": [H, W], "counts": []}
    flat, cur, n = m.ravel(order="F"), 0, 0
    for v in flat:  # uncompressed counts, built by hand
        if v != cur:
            unc["counts"].append(n)
            cur, n = v, 0
        n += 1
    unc["counts"].append(n)
    poly = [[5, 3, 14, 3, 14, 10, 5, 10]]
    for seg in (rle, _rle(m), unc):
        np.testing.assert_array_equal(decode_segmentation(seg, H, W), m)
    assert abs(int(decode_segmentation(poly, H, W).sum()) - int(m.sum())) <= 16
    with pytest.raises(ValueError, match="size"):
        decode_segmentation(_rle(m), H + 1, W)


def test_slots_aligned_no_augmentation(tmp_path):
    record, masks = make_video(tmp_path)
    for seed in range(4):
        clip = seeded(lambda: mapper()(record), seed)
        assert clip["frame_ids"] == list(range(6))
        assert clip["file_names"] == record["file_names"]
        center_f, ids = check_slots(clip, masks, lambda m: m)
        assert ids == ([1] if center_f in (2, 3) else [1, 2])
        for pos in range(6):
            np.testing.assert_array_equal(
                clip["image"][pos].numpy().transpose(1, 2, 0), orig_image(record, pos)
            )
            assert clip["image"][pos].dtype == torch.uint8
        if ids == [1, 2]:  # track 2 absent in frames 2, 3 keeps its row with id -1
            assert clip["instances"][2].gt_ids.tolist() == [1, -1]
            assert not clip["instances"][3].gt_masks.tensor[1].any()


def test_forced_flip_flips_every_frame(tmp_path):
    record, masks = make_video(tmp_path)
    clip = seeded(lambda: mapper([T.RandomFlip(prob=1.0)])(record), 0)
    check_slots(clip, masks, np.fliplr)
    for pos, f in enumerate(clip["frame_ids"]):
        np.testing.assert_array_equal(
            clip["image"][pos].numpy().transpose(1, 2, 0), orig_image(record, f)[:, ::-1]
        )


def test_random_resize_is_shared_by_every_frame(tmp_path):
    record, masks = make_video(tmp_path)
    augs = [T.ResizeShortestEdge((40, 72), 1000, "range"), T.RandomFlip(prob=0.5)]
    sizes = set()
    for seed in range(5):
        clip = seeded(lambda: mapper(augs)(record), seed)
        shapes = {tuple(im.shape) for im in clip["image"]}
        assert len(shapes) == 1
        _, h, w = shapes.pop()
        sizes.add(h)
        resize = T.ResizeTransform(H, W, h, w)
        flipped = not np.array_equal(
            clip["image"][0].numpy().transpose(1, 2, 0),
            resize.apply_image(orig_image(record, clip["frame_ids"][0])),
        )
        tfm = T.TransformList([resize] + ([T.HFlipTransform(w)] if flipped else []))
        check_slots(clip, masks, tfm.apply_segmentation)
        for pos, f in enumerate(clip["frame_ids"]):
            np.testing.assert_array_equal(
                clip["image"][pos].numpy().transpose(1, 2, 0),
                tfm.apply_image(orig_image(record, f)),
            )
    assert len(sizes) > 1  # the size is random, yet shared within a clip


def test_random_crop_is_shared_by_every_frame(tmp_path):
    record, masks = make_video(tmp_path)
    ch, cw = 20, 24
    for seed in range(5):
        clip = seeded(lambda: mapper([T.RandomCrop("absolute", (ch, cw))])(record), seed)
        c = clip["center"]
        center_img = clip["image"][c].numpy().transpose(1, 2, 0)
        orig = orig_image(record, clip["frame_ids"][c])
        offsets = [
            (y, x) for y in range(H - ch + 1) for x in range(W - cw + 1)
            if np.array_equal(orig[y:y + ch, x:x + cw], center_img)
        ]
        assert len(offsets) == 1
        y0, x0 = offsets[0]
        for pos, f in enumerate(clip["frame_ids"]):
            np.testing.assert_array_equal(
                clip["image"][pos].numpy().transpose(1, 2, 0),
                orig_image(record, f)[y0:y0 + ch, x0:x0 + cw],
            )
        check_slots(clip, masks, lambda m, y0=y0, x0=x0: m[y0:y0 + ch, x0:x0 + cw])


class _FixedCrop(T.Augmentation):
    def __init__(self, x0, y0, w, h):
        super().__init__()
        self._init(locals())

    def get_transform(self, image):
        return T.CropTransform(self.x0, self.y0, self.w, self.h)


def test_cropped_out_objects_are_absent(tmp_path):
    record, masks = make_video(tmp_path)
    # keeps x in [0, 22): track 1 (x = 2+2f .. 10+2f) stays, track 2 (x 30..38) is cropped out
    clip = seeded(lambda: mapper([_FixedCrop(0, 0, 22, 32)])(record), 0)
    assert clip["instances"][clip["center"]].gt_ids.tolist() == [1]  # no slot for track 2
    check_slots(clip, masks, lambda m: m[:, :22])
    # the crop keeps only track 2's region: centre frames where only track 1 exists get no slot
    # for it, and track 1 is never present
    for seed in range(6):
        clip = seeded(lambda: mapper([_FixedCrop(26, 16, 14, 16)])(record), seed)
        center_f, ids = check_slots(clip, masks, lambda m: m[16:32, 26:40])
        assert 1 not in ids
        assert ids == ([] if center_f in (2, 3) else [2])
        for inst in clip["instances"]:
            assert len(inst) == len(ids) and inst.gt_masks.tensor.shape[1:] == (16, 14)


@pytest.mark.parametrize("sampling", ["uniform", "nearest"])
def test_clip_frames_respect_T_and_K(tmp_path, sampling):
    record, _ = make_video(tmp_path, length=8)
    for T_, K in [(2, 3), (1, 5), (3, 2), (0, 2), (6, 0)]:
        m = mapper(T_=T_, K=K, sampling=sampling)
        for seed in range(12):
            clip = seeded(lambda m=m: m(record), seed)
            ids = clip["frame_ids"]
            t = ids[clip["center"]]
            window = [f for f in range(t - T_, t + T_ + 1) if 0 <= f < 8]
            assert ids == sorted(set(ids)) and set(ids) <= set(window)
            assert len(ids) == min(K + 1, len(window))
            assert len(clip["image"]) == len(clip["instances"]) == len(ids)
            if sampling == "nearest":
                dmax = max(abs(f - t) for f in ids)
                assert all(f in ids for f in window if abs(f - t) < dmax)
    # nearest with K=2: the two neighbours (clamped at the ends)
    for c, exp in [(0, [0, 1, 2]), (4, [3, 4, 5]), (7, [5, 6, 7])]:
        assert seeded(lambda c=c: sample_clip_frames(c, 8, 6, 2, "nearest"), 0) == exp


def test_uniform_sampling_covers_the_window():
    seen = set()
    for seed in range(60):
        seen.update(seeded(lambda: sample_clip_frames(5, 20, 3, 2, "uniform"), seed))
    assert seen == set(range(2, 9))


def test_one_frame_video(tmp_path):
    record, masks = make_video(tmp_path, length=1)
    clip = seeded(lambda: mapper([T.RandomFlip(prob=1.0)], T_=6, K=2)(record), 0)
    assert clip["frame_ids"] == [0] and clip["center"] == 0
    assert len(clip["image"]) == 1
    check_slots(clip, masks, np.fliplr)


def test_centre_is_an_annotated_frame(tmp_path):
    record, _ = make_video(tmp_path, length=7, annotated={4})
    record["annotations"][1] = [record["annotations"][4][-1]]  # frame 1: only a crowd object
    for seed in range(10):
        clip = seeded(lambda: mapper(T_=2, K=1)(record), seed)
        assert clip["frame_ids"][clip["center"]] == 4
        assert clip["instances"][clip["center"]].gt_ids.tolist() == [1, 2]
    # no annotated frame at all: any frame may be the centre; clip has no slots
    record["annotations"] = [[] for _ in range(7)]
    centres = {seeded(lambda: mapper(T_=0, K=0)(record), s)["frame_ids"][0] for s in range(20)}
    assert len(centres) > 1
    # without the requirement, unannotated frames are centres too
    record, _ = make_video(tmp_path, length=7, annotated={4}, video_id=2)
    centres = {
        seeded(lambda: mapper(T_=0, K=0, center_req=False)(record), s)["frame_ids"][0]
        for s in range(20)
    }
    assert len(centres) > 1


def test_colour_jitter_is_identical_across_frames(tmp_path):
    record, _ = make_video(tmp_path, length=4, same_pixels={0, 1, 2, 3})
    plain = seeded(lambda: mapper()(record), 0)
    for im in plain["image"][1:]:
        assert torch.equal(im, plain["image"][0])
    jit = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5}
    changed = False
    for seed in range(3):
        clip = seeded(lambda: mapper(jitter=jit)(record), seed)
        for im in clip["image"][1:]:
            assert torch.equal(im, clip["image"][0])
        changed |= not torch.equal(clip["image"][0], plain["image"][0])
    assert changed


def test_channel_shuffle_permutes_all_frames_alike(tmp_path):
    record, _ = make_video(tmp_path, length=4, same_pixels={0, 1, 2, 3})
    plain = seeded(lambda: mapper()(record), 0)["image"][0]
    jit = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "channel_shuffle": 1.0}
    perms = set()
    for seed in range(12):
        clip = seeded(lambda: mapper(jitter=jit)(record), seed)
        first = clip["image"][0]
        for im in clip["image"][1:]:
            assert torch.equal(im, first)
        # the frame is a permutation of the plain frame's channels, nothing else changed
        match = [c for c in range(3) for k in range(3) if torch.equal(first[c], plain[k])]
        assert len(match) >= 3
        perms.add(tuple(int(torch.argmax(torch.tensor([
            float(torch.equal(first[c], plain[k])) for k in range(3)]))) for c in range(3)))
    assert len(perms) > 1  # different clips get different permutations
    never = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "channel_shuffle": 0.0}
    assert torch.equal(seeded(lambda: mapper(jitter=never)(record), 1)["image"][0], plain)


def test_no_state_between_calls(tmp_path):
    record, _ = make_video(tmp_path, length=8)
    augs = [
        T.RandomCrop("relative_range", (0.6, 0.6)),
        T.ResizeShortestEdge((24, 48), 100, "range"),
        T.RandomFlip(prob=0.5),
    ]
    jit = {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3}
    m = mapper(augs, T_=3, K=2, jitter=jit)
    a = seeded(lambda: m(record), 123)
    for s in range(3):
        seeded(lambda: m(record), s)
    b = seeded(lambda: m(record), 123)
    c = seeded(lambda: mapper(augs, T_=3, K=2, jitter=jit)(record), 123)
    for other in (b, c):
        assert other["frame_ids"] == a["frame_ids"] and other["center"] == a["center"]
        for x, y in zip(a["image"], other["image"], strict=True):
            assert torch.equal(x, y)
        for x, y in zip(a["instances"], other["instances"], strict=True):
            assert torch.equal(x.gt_ids, y.gt_ids)
            assert torch.equal(x.gt_masks.tensor, y.gt_masks.tensor)
            assert torch.equal(x.gt_boxes.tensor, y.gt_boxes.tensor)


def test_training_record_without_annotations_is_an_error(tmp_path):
    record, _ = make_video(tmp_path, length=2)
    del record["annotations"]
    with pytest.raises(ValueError, match="annotations"):
        mapper()(record)


def _cfg():
    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN = (48, 64)
    cfg.INPUT.MAX_SIZE_TRAIN = 200
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 200
    return cfg


def test_from_config(tmp_path):
    cfg = _cfg()
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.COLOR_JITTER.ENABLED = True
    cfg.INPUT.CLIP.HALF_LENGTH = 2
    cfg.INPUT.CLIP.NUM_SAMPLED_FRAMES = 2
    m = ClipDatasetMapper(cfg, is_train=True)
    assert m.half_length == 2 and m.num_sampled_frames == 2 and m.color_jitter
    assert isinstance(m.augmentations.augs[0], T.RandomCrop)
    record, _ = make_video(tmp_path)
    clip = seeded(lambda: m(record), 0)
    assert len(clip["frame_ids"]) == 3
    assert len({tuple(im.shape) for im in clip["image"]}) == 1
    assert min(clip["image"][0].shape[1:]) in (48, 64)


def test_inference_mapper_lazy_in_order(tmp_path):
    record, _ = make_video(tmp_path, length=5)
    m = VideoInferenceMapper(_cfg())
    out = m(dict(record))
    assert out["length"] == 5 and out["file_names"] == record["file_names"]
    assert "annotations" not in out
    frames = out["frames"]
    assert isinstance(frames, VideoFrames) and len(frames) == 5
    resize = T.ResizeTransform(H, W, 64, 80)
    for _ in range(2):  # re-iterable
        items = list(frames)
        assert [d["frame_idx"] for d in items] == list(range(5))
        for d in items:
            assert tuple(d["image"].shape) == (3, 64, 80)
            assert (d["height"], d["width"]) == (H, W)
            np.testing.assert_array_equal(
                d["image"].numpy().transpose(1, 2, 0),
                resize.apply_image(orig_image(record, d["frame_idx"])),
            )
    # lazy: a deleted later file only fails when that frame is read
    fresh = m(dict(record))["frames"]
    os.remove(record["file_names"][4])
    assert fresh[0]["frame_idx"] == 0 and fresh[3]["frame_idx"] == 3
    with pytest.raises(FileNotFoundError):
        fresh[4]
    with pytest.raises(IndexError):
        fresh[5]


def test_size_mismatch_is_a_clear_error(tmp_path):
    record, _ = make_video(tmp_path, length=3)
    cv2.imwrite(record["file_names"][2], np.zeros((H + 2, W, 3), dtype=np.uint8))
    frames = VideoInferenceMapper(_cfg())(record)["frames"]
    frames[0]
    with pytest.raises(ValueError, match="00002.jpg"):
        frames[2]
    with pytest.raises(ValueError, match="00002.jpg"):
        seeded(lambda: mapper(T_=3, K=3)(record), 0)
