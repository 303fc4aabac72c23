"""Per-frame baseline: mask-IoU linking on hand-made masks, and the streaming inference on a tiny
random-weight model (same detections as MaskProp's, one backbone pass per frame, no delay)."""

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from maskprop_d2.inference import collect_video_results
from maskprop_d2.modeling.mask_ops import paste_at_output_size
from maskprop_d2.tracking import (
    CategoryVotes,
    FrameLinker,
    FrameLinkingTracker,
    MaskPropTracker,
    build_video_tracker,
    link_by_iou,
)
from maskprop_d2.utils.masks import mask_iou
from tests.video_helpers import drifting_video, tiny_video_model


# ---------------------------------------------------------------------- linking on plain masks
def _square(y, x, s=8, hw=(32, 32)):
    m = torch.zeros(hw, dtype=torch.bool)
    m[y : y + s, x : x + s] = True
    return m


def _frame(*squares):
    return (
        torch.stack([_square(*s) for s in squares])
        if squares
        else torch.zeros((0, 32, 32), dtype=torch.bool)
    )


def test_mask_iou_matches_pairwise_definition():
    g = torch.Generator().manual_seed(0)
    a = torch.rand((4, 9, 7), generator=g) > 0.6
    b = torch.rand((3, 9, 7), generator=g) > 0.4
    b[2] = False  # an empty mask: IoU 0, not NaN
    a[3] = False
    iou = mask_iou(a, b)
    assert iou.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            u = (a[i] | b[j]).sum().item()
            exp = (a[i] & b[j]).sum().item() / u if u else 0.0
            assert iou[i, j].item() == pytest.approx(exp, abs=1e-6)
    assert mask_iou(a[:0], b).shape == (0, 3) and mask_iou(a, b[:0]).shape == (4, 0)
    with pytest.raises(ValueError):
        mask_iou(a, b[:, :8])


def test_link_by_iou_is_optimal_one_to_one_and_thresholded():
    # greedy would give row 0 -> col 0 and leave row 1 unlinked; the assignment maximises the sum
    assert link_by_iou(torch.tensor([[0.6, 0.5], [0.55, 0.0]]), 0.3).tolist() == [1, 0]
    # both rows prefer col 0: only one gets it, the other has no admissible partner
    assert link_by_iou(torch.tensor([[0.9], [0.8]]), 0.3).tolist() == [0, -1]
    # below the threshold never links, equal to it links; IoU 0 never links even at thresh 0
    assert link_by_iou(np.array([[0.29, 0.3]]), 0.3).tolist() == [1]
    assert link_by_iou(np.array([[0.0, 0.0]]), 0.0).tolist() == [-1]
    assert link_by_iou(np.zeros((0, 2)), 0.3).tolist() == []
    assert link_by_iou(np.zeros((2, 0)), 0.3).tolist() == [-1, -1]


def test_two_moving_objects_keep_ids_and_a_jump_gets_a_new_id():
    lk = FrameLinker(iou_thresh=0.3)
    ids0 = lk.step(_frame((2, 2), (20, 20)))
    assert ids0.tolist() == [0, 1]
    # both move 1 px (IoU 56/72); the detections come in the other order
    ids1 = lk.step(_frame((21, 21), (3, 2)))
    assert ids1.tolist() == [1, 0]
    ids2 = lk.step(_frame((3, 3), (22, 21)))
    assert ids2.tolist() == [0, 1]
    # object 0 jumps 6 px (IoU 16/112 < 0.3): a new ID; object 1 keeps its ID
    ids3 = lk.step(_frame((3, 9), (22, 22)))
    assert ids3.tolist() == [2, 1]
    assert lk.num_ids == 3
    assert lk.num_tracks == 2  # memory: only the previous frame's masks


def test_two_detections_cannot_take_one_id():
    lk = FrameLinker(iou_thresh=0.3)
    (a,) = lk.step(_frame((10, 10))).tolist()
    ids = lk.step(_frame((10, 11), (10, 10))).tolist()  # both overlap track a (0.78 and 1.0)
    assert sorted(ids) == [a, a + 1]
    assert ids[1] == a  # the identical mask takes it (larger IoU)
    # an empty frame ends every track (max_gap 0): the object reappearing gets a new ID
    assert lk.step(_frame()).tolist() == []
    assert lk.step(_frame((10, 10))).tolist() == [a + 2]


def test_max_gap_relinks_after_a_missed_detection():
    lk = FrameLinker(iou_thresh=0.3, max_gap=1)
    assert lk.step(_frame((2, 2), (20, 20))).tolist() == [0, 1]
    assert lk.step(_frame((2, 3))).tolist() == [0]  # object 1 missed once: kept as a candidate
    assert lk.num_tracks == 2
    assert lk.step(_frame((2, 4), (20, 21))).tolist() == [0, 1]  # re-linked to its last mask
    assert lk.step(_frame((2, 5))).tolist() == [0]
    assert lk.step(_frame((2, 6))).tolist() == [0]  # object 1 missed twice > max_gap: dropped
    assert lk.num_tracks == 1
    assert lk.step(_frame((2, 7), (20, 21))).tolist() == [0, 2]
    with pytest.raises(ValueError):
        FrameLinker(0.3, max_gap=-1)


# ---------------------------------------------------------------------- on a tiny model
@pytest.fixture(scope="module")
def tiny():
    return tiny_video_model(
        "INPUT.CLIP.HALF_LENGTH", 0, "MODEL.MASKPROP.INFERENCE.TRACKER", "frame_linking"
    )


def test_build_and_config(tiny):
    cfg, model = tiny
    fl = build_video_tracker(cfg, model)  # TRACKER = frame_linking
    assert isinstance(fl, FrameLinkingTracker)
    assert isinstance(build_video_tracker(cfg, model, "frame_linking"), FrameLinkingTracker)
    assert fl.link_iou_thresh == cfg.MODEL.MASKPROP.INFERENCE.LINK_IOU_THRESH
    assert fl.max_instances == cfg.TEST.DETECTIONS_PER_VIDEO and fl.max_gap == 0
    assert FrameLinkingTracker(cfg, model, max_gap=2).max_gap == 2


@torch.no_grad()
def test_stream_one_backbone_pass_per_frame_no_delay_same_detections(tiny):
    cfg, model = tiny
    frames = drifting_video(6)
    calls = []
    hook = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    try:
        fl = FrameLinkingTracker(cfg, model)
        consumed = []

        def gen():
            for f in frames:
                consumed.append(1)
                yield f

        outs = []
        for o in fl.stream(gen()):
            assert len(consumed) == o.frame_idx + 1  # final right after its own frame
            outs.append(o)
    finally:
        hook.remove()
    assert [o.frame_idx for o in outs] == list(range(6))
    assert len(calls) == 6
    assert fl.state_size()["tracks"] <= fl.topk

    total = 0
    for o, fr in zip(outs, frames, strict=True):
        assert o.masks.dtype == torch.bool and o.masks.shape[1:] == (128, 192)
        assert o.ids.dtype == torch.long and len(set(o.ids.tolist())) == len(o.ids)
        assert o.masks.flatten(1).any(1).all()
        # exactly the detector's masks of this frame, pasted and thresholded
        images, _, inst, probs = model.detect_frame(fr, fl.score_thresh, fl.topk, fl.nms_thresh)
        ref = (
            paste_at_output_size(probs, inst.pred_boxes.tensor, images.image_sizes[0], (128, 192))
            > fl.mask_thresh
        )
        ref = ref[ref.flatten(1).any(1)]
        got = sorted(m.numpy().tobytes() for m in o.masks)
        assert got == sorted(m.numpy().tobytes() for m in ref)
        total += len(o.ids)
    assert total > 0, "the test model should produce some masks"

    # same detector weights and post-processing as MaskProp: at T = 0 (no neighbours to
    # propagate to) MaskProp's per-frame masks are exactly these; only the IDs may differ
    vi_outs = list(MaskPropTracker(cfg, model).stream(frames))
    for a, b in zip(outs, vi_outs, strict=True):
        assert sorted(m.numpy().tobytes() for m in a.masks) == sorted(
            m.numpy().tobytes() for m in b.masks
        )

    insts = fl.video_instances()
    assert {v.id for v in insts} == {y for o in outs for y in o.ids.tolist()}
    assert all(insts[i].score >= insts[i + 1].score for i in range(len(insts) - 1))
    for v in insts:
        assert 0 <= v.category_id < model.roi_heads.num_classes and 0 <= v.score <= 1
        assert fl.current_instance(v.id) == v
    assert fl.current_instance(10**6) is None


@torch.no_grad()
def test_static_video_keeps_every_id(tiny):
    """Identical frames give identical detections: every mask links to itself (IoU 1)."""
    cfg, model = tiny
    frames = drifting_video(1) * 3
    fl = FrameLinkingTracker(cfg, model)
    outs = list(fl.stream(frames))
    assert len(outs[0].ids) > 1
    for o in outs[1:]:
        assert o.ids.tolist() == outs[0].ids.tolist()
        assert torch.equal(o.masks, outs[0].masks)
    assert fl.state_size()["video_ids"] == len(outs[0].ids)
    images, _, inst, probs = model.detect_frame(frames[0], fl.score_thresh, fl.topk, fl.nms_thresh)
    soft = paste_at_output_size(probs, inst.pred_boxes.tensor, images.image_sizes[0], (128, 192))
    visible = (soft > fl.mask_thresh).flatten(1).any(1)
    exp = sorted(inst.scores[visible].tolist(), reverse=True)
    got = [v.score for v in fl.video_instances()]
    assert got == pytest.approx(exp, rel=1e-5)  # 3 detections each: sum / 3 = the score


def test_category_and_score_per_id():
    votes = CategoryVotes(5)
    # ID 0: class 0 at .5 and .4, class 2 at .5 -> class 0, (.5 + .4) / 3 = .3; ID 1: class 4 at .4
    votes.add([0, 1], torch.tensor([0, 4]), torch.tensor([0.5, 0.4]))
    votes.add([0], torch.tensor([0]), torch.tensor([0.4]))
    votes.add([0], torch.tensor([2]), torch.tensor([0.5]))
    assert votes.get(0).category_id == 0
    assert votes.get(0).score == pytest.approx(0.3)
    assert votes.get(7) is None
    assert [v.id for v in votes.ranked(1)] == [1]  # 0.4 > 0.3, capped at one
    assert [v.id for v in votes.ranked(5)] == [1, 0]


def test_collect_video_results_gives_valid_entries(tiny):
    cfg, model = tiny
    fl = build_video_tracker(cfg, model, "frame_linking")
    length = 5
    entries = collect_video_results(
        fl.stream(drifting_video(length, seed=1)), fl.video_instances, length
    )
    assert entries
    assert [e["score"] for e in entries] == sorted((e["score"] for e in entries), reverse=True)
    for e in entries:
        assert 0 <= e["category_id"] < model.roi_heads.num_classes
        assert len(e["segmentations"]) == length
        assert any(s is not None for s in e["segmentations"])
        for s in e["segmentations"]:
            if s is not None:
                assert s["size"] == [128, 192] and isinstance(s["counts"], str)
                assert mask_util.area(s) > 0


def test_votes_from_class_probabilities_and_categories_per_instance():
    votes = CategoryVotes(3, categories_per_instance=2)
    # ID 0: two tracks with probs (.6, .3, .1) and (.2, .5, .1) -> mean (.4, .4, .1):
    # tie between classes 0 and 1 -> class 0 first. ID 1: one track (0, .9, 0) -> class 1 only
    # (its second class has probability 0 and is not reported).
    votes.add(
        [0, 1],
        torch.tensor([0, 1]),
        torch.tensor([0.6, 0.9]),
        class_probs=torch.tensor([[0.6, 0.3, 0.1], [0.0, 0.9, 0.0]]),
    )
    votes.add([0], torch.tensor([1]), torch.tensor([0.5]), torch.tensor([[0.2, 0.5, 0.1]]))
    got = [(v.id, v.category_id, round(v.score, 6)) for v in votes.ranked(10)]
    assert got == [(1, 1, 0.9), (0, 0, 0.4), (0, 1, 0.4)]
    assert [(v.id, v.category_id) for v in votes.ranked(2)] == [(1, 1), (0, 0)]
    assert votes.get(0).category_id == 0 and votes.get(0).score == pytest.approx(0.4)
    with pytest.raises(ValueError, match="class_probs"):
        votes.add([0], torch.tensor([0]), torch.tensor([0.5]), torch.ones(1, 4))
    with pytest.raises(ValueError, match="categories_per_instance"):
        CategoryVotes(3, categories_per_instance=0)


def test_detections_carry_their_class_distribution(tiny):
    _, model = tiny
    _, _, inst, _ = model.detect_frame(drifting_video(1)[0], 0.0, 100)
    assert len(inst) > 0
    probs = inst.class_probs
    assert probs.shape == (len(inst), model.roi_heads.num_classes)
    assert bool((probs.sum(1) <= 1 + 1e-5).all())  # softmax without the background column
    # the detection's score is the probability of its own class in that distribution
    picked = probs[torch.arange(len(inst)), inst.pred_classes]
    assert torch.allclose(picked, inst.scores, atol=1e-6)


def test_categories_per_instance_reports_each_id_under_several_classes():
    cfg, model = tiny_video_model("MODEL.MASKPROP.INFERENCE.CATEGORIES_PER_INSTANCE", "2")
    for tracker in ("maskprop", "frame_linking"):
        vi = build_video_tracker(cfg, model, tracker)
        entries = collect_video_results(vi.stream(drifting_video(4)), vi.video_instances, 4)
        ids = [v.id for v in vi.video_instances()]
        assert len(ids) == len(entries)
        # random weights spread the probability over classes: every ID gets two categories
        assert sorted(list(set(ids)) * 2) == sorted(ids)
        cats = {}
        for v in vi.video_instances():
            cats.setdefault(v.id, []).append(v.category_id)
        assert all(len(set(c)) == 2 for c in cats.values())


def test_class_agnostic_nms_removes_overlapping_detections(tiny):
    from torchvision.ops import box_iou

    _, model = tiny
    frame = drifting_video(1)[0]
    _, _, every, _ = model.detect_frame(frame, 0.0, 100, nms_thresh=1.0)
    _, _, kept, _ = model.detect_frame(frame, 0.0, 100, nms_thresh=0.3)
    assert 0 < len(kept) < len(every)  # random weights: many overlapping boxes of several classes
    iou = box_iou(kept.pred_boxes.tensor, kept.pred_boxes.tensor)
    iou.fill_diagonal_(0)
    assert float(iou.max()) <= 0.3 + 1e-6
    # the survivors are detections of the unsuppressed set, best first
    assert kept.scores[0] == every.scores.max()
    assert all(bool((every.pred_boxes.tensor == b).all(1).any()) for b in kept.pred_boxes.tensor)
