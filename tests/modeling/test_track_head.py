"""MaskTrack R-CNN's tracking head: loss, frozen-detector training, and its tracker."""

from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from maskprop_d2 import add_maskprop_config
from maskprop_d2.modeling import MaskTrackRCNN, MaskTrackROIHeads
from maskprop_d2.modeling.track_head import match_logits, track_embedding_loss
from maskprop_d2.tracking import (
    VIDEO_TRACKER_REGISTRY,
    EmbeddingMemory,
    TrackingHeadTracker,
    build_video_tracker,
    tracker_class,
)
from tests.helpers import make_clip
from tests.video_helpers import forward_calls

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "synthetic" / "masktrack_tiny.yaml"


def masktrack_cfg(*opts):
    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(str(CONFIG))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.merge_from_list(list(opts))
    return cfg


def _clip(n_frames=3, h=64, w=96, center=1, absent=(2, 1), shift=0):
    """Two textured squares moving right; object slot ``absent[1]`` is missing in frame
    ``absent[0]``."""
    return make_clip(n_frames, h, w, center, absent, shift=shift, textured=True)


# ----------------------------------------------------------------------------- the loss
def test_match_logits_put_new_object_first_at_zero():
    q = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    m = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    lg = match_logits(q, m)
    assert lg.shape == (2, 4)
    assert torch.equal(lg[:, 0], torch.zeros(2))
    assert torch.allclose(lg[:, 1:], q @ m.t())


def test_loss_rewards_the_right_reference_and_new_objects():
    ref = torch.eye(3) * 10  # three well separated reference instances
    # instance 2, instance 0, and a new object (negative similarity with every reference)
    key = torch.stack([ref[2], ref[0], -torch.ones(3)])
    right = torch.tensor([3, 1, 0])
    wrong = torch.tensor([1, 3, 2])
    assert track_embedding_loss(key, ref, right) < 1e-3
    assert track_embedding_loss(key, ref, wrong) > 5.0
    # first row by hand: logits [0, 0, 0, 100] -> -log(e^100 / (3 + e^100))
    one = track_embedding_loss(key[:1], ref, right[:1])
    assert torch.isclose(one, -torch.log_softmax(torch.tensor([0.0, 0, 0, 100]), 0)[3])
    assert track_embedding_loss(key[:0], ref, right[:0]).item() == 0.0


# ----------------------------------------------------------------------------- the model
def test_built_from_config_with_only_the_tracking_head_trainable():
    torch.manual_seed(0)
    model = build_model(masktrack_cfg())
    assert isinstance(model, MaskTrackRCNN) and isinstance(model.roi_heads, MaskTrackROIHeads)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("roi_heads.track_head.") for n in trainable)
    assert model.roi_heads.track_head.embed_dim == 128
    model.train()
    assert model.training and model.roi_heads.track_head.training
    frozen = [m for n, m in model.named_modules() if not n.startswith("roi_heads.track_head")
              and n not in ("", "roi_heads")]
    assert frozen and not any(m.training for m in frozen)  # batch-norm statistics stay put


def test_a_training_step_updates_only_the_tracking_head():
    torch.manual_seed(0)
    model = build_model(masktrack_cfg())
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with EventStorage(0) as storage:
        clips = [
            _clip(),
            _clip(n_frames=2, center=0, absent=(1, 0), shift=4),
            _clip(n_frames=2, center=0, absent=(1, slice(None))),  # nothing in the reference
        ]
        losses = model(clips)
        assert set(losses) == {"loss_track"} and torch.isfinite(losses["loss_track"])
        losses["loss_track"].backward()
        opt.step()
        assert "track_head/accuracy" in storage.latest()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("roi_heads.track_head.") for k in changed)


def test_training_lowers_the_tracking_loss():
    torch.manual_seed(0)
    model = build_model(masktrack_cfg())
    model.train()
    clips = [_clip(shift=s) for s in (0, 3)]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    with EventStorage(0):
        for _ in range(25):
            torch.manual_seed(1)  # same reference frames each step
            loss = model(clips)["loss_track"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history


# ----------------------------------------------------------------------------- association
def test_memory_follows_instances_by_embedding_and_starts_new_ones():
    mem = EmbeddingMemory(score_weight=1.0, iou_weight=2.0, class_weight=10.0)
    e = torch.eye(4) * 8
    boxes = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]])
    ones = torch.ones(2)
    ids0 = mem.step(e[:2], boxes, torch.tensor([0, 1]), ones)
    assert ids0.tolist() == [0, 1]
    # next frame: the same two instances in swapped order, plus one never seen
    ids1 = mem.step(
        torch.stack([e[1], e[0], e[2]]),
        torch.tensor([[50.0, 50, 60, 60], [1, 1, 11, 11], [80, 0, 90, 10]]),
        torch.tensor([1, 0, 1]),
        torch.ones(3),
    )
    assert ids1.tolist() == [1, 0, 2] and mem.num_ids == 3


def test_memory_class_disagreement_and_one_to_one():
    # weakly separated embeddings (dot product 1): the class and box terms decide
    e = torch.eye(3)
    box = torch.tensor([[0.0, 0, 10, 10]])
    mem = EmbeddingMemory()
    mem.step(e[:1], box, torch.tensor([0]), torch.ones(1))
    v, v_new = mem.scores(e[:1], box, torch.tensor([3]), torch.ones(1))
    # log p = log_softmax([0, 1]); match: log p(1) + 2 * IoU 1; new: log p(new) + 10
    logp = torch.log_softmax(torch.tensor([0.0, 1.0]), 0)
    assert torch.allclose(v, (logp[1] + 2.0).reshape(1, 1))
    assert torch.allclose(v_new, (logp[0] + 10.0).reshape(1))
    # so the same box and embedding with another class is a new instance ...
    assert mem.step(e[:1], box, torch.tensor([3]), torch.ones(1)).tolist() == [1]
    # ... and with the same class, the old one
    assert mem.step(e[:1], box, torch.tensor([0]), torch.ones(1)).tolist() == [0]
    # a strongly similar embedding overrides the class disagreement (log p ~ 0 vs ~ -64)
    mem2 = EmbeddingMemory()
    mem2.step(e[:1] * 8, box, torch.tensor([0]), torch.ones(1))
    assert mem2.step(e[:1] * 8, box, torch.tensor([3]), torch.ones(1)).tolist() == [0]
    # two detections that both look like instance 0: one-to-one, the other starts a new ID
    ids = mem2.step(e[:1].repeat(2, 1) * 8, box.repeat(2, 1), torch.tensor([0, 0]),
                    torch.tensor([0.9, 0.8]))
    assert sorted(ids.tolist()) == [0, 1]


def test_tracker_is_registered_streams_and_needs_a_tracking_head():
    assert tracker_class("tracking_head") is TrackingHeadTracker
    assert VIDEO_TRACKER_REGISTRY.get("TrackingHeadTracker") is TrackingHeadTracker
    cfg = masktrack_cfg(
        "MODEL.MASKPROP.INFERENCE.SCORE_THRESH", 0.0, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
        "MODEL.MASKPROP.INFERENCE.MASK_THRESH", 0.2,
    )
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    tracker = build_video_tracker(cfg, model)
    assert isinstance(tracker, TrackingHeadTracker)
    assert tracker.weights == (1.0, 2.0, 2.0)  # the config sets the class weight to 2
    frames = [{"image": f, "height": 128, "width": 192} for f in _clip(n_frames=4)["image"]]
    with forward_calls(model.backbone) as calls:
        outs = list(tracker.stream(frames))
    assert [o.frame_idx for o in outs] == [0, 1, 2, 3] and len(calls) == 4
    assert all(o.masks.shape[-2:] == (128, 192) and o.masks.dtype == torch.bool for o in outs)
    assert any(len(o.ids) for o in outs)
    assert tracker.state_size()["memory"] == tracker.state_size()["video_ids"] > 0
    listed = {i.id for i in tracker.video_instances()}
    assert {int(i) for o in outs for i in o.ids} == listed

    plain_cfg = masktrack_cfg("MODEL.META_ARCHITECTURE", "MaskProp",
                              "MODEL.ROI_HEADS.NAME", "MaskPropROIHeads")
    with pytest.raises(ValueError, match=r"needs a model with model\.roi_heads\.embed.*MaskTrack"):
        build_video_tracker(plain_cfg, build_model(plain_cfg))


@pytest.mark.parametrize(
    "config", sorted(str(p.relative_to(REPO)) for p in REPO.glob("configs/*/masktrack_*.yaml"))
)
def test_every_masktrack_config_builds_a_frozen_detector_with_a_tracking_head(config):
    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(str(REPO / config))
    assert cfg.MODEL.MASKPROP.INFERENCE.TRACKER == "tracking_head"
    assert cfg.MODEL.WEIGHTS.endswith("maskprop_{}/model_final.pth".format(
        cfg.MODEL.WEIGHTS.split("maskprop_")[-1].split("/")[0]))  # a MaskProp checkpoint
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    assert isinstance(model, MaskTrackRCNN)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("roi_heads.track_head.") for n in trainable)
