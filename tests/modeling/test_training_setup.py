"""Training set-up added for CPU models: optimizer choice, the narrow ResNet-FPN backbone, the
config helper, and the propagation head's per-δ soft-IoU signal in EventStorage."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone
from detectron2.utils.events import EventStorage

from maskprop_d2 import get_maskprop_cfg
from maskprop_d2.modeling import MaskPropROIHeads
from maskprop_d2.solver import build_optimizer
from maskprop_d2.utils.masks import soft_iou
from tests.helpers import TINY_CONFIG, make_clip


def test_get_maskprop_cfg_merges_file_then_opts():
    cfg = get_maskprop_cfg(
        TINY_CONFIG, ["SOLVER.BASE_LR", "0.5", "MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME", "3"]
    )
    assert cfg.SOLVER.BASE_LR == 0.5
    assert cfg.MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME == 3
    assert cfg.MODEL.META_ARCHITECTURE == "MaskProp"


@pytest.mark.parametrize("name,cls", [("SGD", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_optimizer_choice(name, cls):
    cfg = get_maskprop_cfg(TINY_CONFIG, ["SOLVER.OPTIMIZER", name, "SOLVER.WEIGHT_DECAY", "0.05"])
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, cls)
    # detectron2's parameter groups: no weight decay on the norm layer
    decays = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays[id(model[0].weight)] == 0.05
    assert decays[id(model[1].weight)] == cfg.SOLVER.WEIGHT_DECAY_NORM
    if cls is torch.optim.AdamW:
        assert opt.param_groups[0]["betas"] == tuple(cfg.SOLVER.BETAS)


def test_unknown_optimizer_is_refused():
    cfg = get_maskprop_cfg(TINY_CONFIG, ["SOLVER.OPTIMIZER", "LAMB"])
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_optimizer(cfg, torch.nn.Linear(2, 2))


@pytest.mark.parametrize("width", [16, 32])
def test_basic_resnet_fpn_backbone_width(width):
    cfg = get_maskprop_cfg(
        TINY_CONFIG,
        [
            "MODEL.BACKBONE.NAME",
            "build_basic_resnet_fpn_backbone",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            str(width),
            "MODEL.RESNETS.STEM_OUT_CHANNELS",
            str(width),
        ],
    )
    bb = build_backbone(cfg, ShapeSpec(channels=3))
    res = bb.bottom_up.output_shape()
    assert [res[k].channels for k in ("res2", "res3", "res4", "res5")] == [
        width * 2**i for i in range(4)
    ]
    out = bb(torch.zeros(1, 3, 128, 192))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p{}".format(i): (1, cfg.MODEL.FPN.OUT_CHANNELS, 128 // 2**i, 192 // 2**i)
        for i in range(2, 7)
    }
    # narrower than detectron2's fixed-width R18
    detectron2_r18 = [
        "MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone",
        "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "MODEL.RESNETS.STEM_OUT_CHANNELS", "64",
        "MODEL.RESNETS.DEPTH", "18",
    ]
    ref = build_backbone(get_maskprop_cfg(TINY_CONFIG, detectron2_r18), ShapeSpec(channels=3))
    n = sum(p.numel() for p in bb.parameters())
    assert n < sum(p.numel() for p in ref.parameters()) / 2


@pytest.mark.parametrize("depth,blocks", [(10, 1), (18, 2)])
def test_basic_backbone_depth_sets_blocks_per_stage(depth, blocks):
    cfg = get_maskprop_cfg(TINY_CONFIG, ["MODEL.RESNETS.DEPTH", str(depth)])
    bottom_up = build_backbone(cfg, ShapeSpec(channels=3)).bottom_up
    assert [len(stage) for stage in bottom_up.stages] == [blocks] * 4


def test_basic_backbone_refuses_bottleneck_depths():
    cfg = get_maskprop_cfg(
        TINY_CONFIG,
        ["MODEL.BACKBONE.NAME", "build_basic_resnet_fpn_backbone", "MODEL.RESNETS.DEPTH", "50"],
    )
    with pytest.raises(ValueError, match="DEPTH=50"):
        build_backbone(cfg, ShapeSpec(channels=3))


def test_soft_iou_by_delta_logged_per_distance():
    logits = torch.full((4, 6, 6), -20.0)
    tgt = torch.zeros(4, 6, 6)
    tgt[:, 1:3, 1:3] = 1
    logits[0, 1:3, 1:3] = 20.0  # exact: sIoU 1
    logits[1, 1:3, 1:2] = 20.0  # half: sIoU 0.5
    logits[2, 4:6, 4:6] = 20.0  # disjoint: sIoU 0
    tgt[3] = 0  # empty GT: not counted
    deltas = torch.tensor([1, 1, 2, 2])
    with EventStorage(0) as storage:
        MaskPropROIHeads.log_soft_iou_by_delta(logits, tgt, deltas)
        latest = {k: v[0] for k, v in storage.latest().items()}
    assert set(latest) == {"prop_siou/d1", "prop_siou/d2", "prop_hiou/d1", "prop_hiou/d2"}
    assert latest["prop_siou/d1"] == pytest.approx(0.75, abs=1e-6)
    assert latest["prop_siou/d2"] == pytest.approx(0.0, abs=1e-6)
    # hard IoU: the same rows thresholded at 0.5 (here the logits are already saturated)
    assert latest["prop_hiou/d1"] == pytest.approx(0.75, abs=1e-6)
    assert latest["prop_hiou/d2"] == pytest.approx(0.0, abs=1e-6)
    assert float(soft_iou(torch.sigmoid(logits[1]), tgt[1])) == pytest.approx(0.5, abs=1e-6)


def test_training_step_reports_soft_iou_by_delta(tiny_model_copy):
    _, model = tiny_model_copy
    model.train()
    clip = make_clip(n_frames=3, center=1)
    with EventStorage(0) as storage:
        model([clip])
        keys = set(storage.latest())
    # frames 0, 1, 2 around centre 1: distance 1, and 0 only when the centre rows are trained
    # (the tiny config does not train them)
    assert "prop_siou/d1" in keys
    assert ("prop_siou/d0" in keys) == model.roi_heads.train_center_rows
    assert not model.roi_heads.train_center_rows
    assert not any(k.startswith("prop_siou/d2") for k in keys)
