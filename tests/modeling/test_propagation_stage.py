"""The correlation offset input of the propagation head and the propagation-only training stage
(``MODEL.ROI_MASK_PROP_HEAD.OFFSET_INPUT``, ``MODEL.MASKPROP.TRAIN_PROPAGATION_ONLY``)."""

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from maskprop_d2.modeling.propagation import MaskPropagationHead, local_correlation
from tests.helpers import make_clip, tiny_cfg


def test_local_correlation_peaks_at_the_displacement_of_a_shifted_map():
    torch.manual_seed(0)
    a = torch.randn(2, 8, 12, 15)
    dy, dx, r = 2, -1, 3
    b = torch.roll(a, shifts=(dy, dx), dims=(2, 3))  # b[y + dy, x + dx] = a[y, x]
    corr = local_correlation(a, b, r)
    assert corr.shape == (2, (2 * r + 1) ** 2, 12, 15)
    inner = corr[:, :, r:-r, r:-r]  # cells whose every displacement stays inside the map
    best = inner.argmax(1)
    assert torch.all(best == (dy + r) * (2 * r + 1) + (dx + r))
    assert torch.allclose(inner.amax(1), torch.ones(()), atol=1e-5)  # cosine of equal vectors
    assert torch.all(corr[:, 0, 0, :] == 0)  # displaced above the map: zero padding


def test_correlation_head_starts_as_identity_and_trains_its_offset_input():
    torch.manual_seed(0)
    head = MaskPropagationHead(in_channels=6, conv_dim=8, offset_input="correlation",
                               correlation_radius=2)  # fmt: skip
    red = head.reduce(torch.randn(3, 6, 10, 14))
    off = head.offsets(red[:2], red[1:])
    assert off.shape == (2, 18, 10, 14) and torch.all(off == 0)  # zero-initialised offset conv
    with torch.no_grad():
        head.offset_conv.weight.normal_(std=0.1)
    masks = (torch.rand(3, 10, 14) > 0.5).float()
    logits = head(red[:2], red[1:], masks, torch.tensor([0, 1, 1]))
    assert logits.shape == (3, 10, 14)
    logits.sum().backward()
    assert head.offset_in.weight.grad is not None and head.offset_in.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="offset_input"):
        MaskPropagationHead(in_channels=6, conv_dim=8, offset_input="flow")


def _stage_cfg():
    cfg = tiny_cfg()
    cfg.MODEL.MASKPROP.TRAIN_PROPAGATION_ONLY = True
    cfg.MODEL.ROI_MASK_PROP_HEAD.OFFSET_INPUT = "correlation"
    return cfg


def test_propagation_stage_trains_only_the_propagation_head_on_a_frozen_detector():
    torch.manual_seed(0)
    model = build_model(_stage_cfg())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("roi_heads.mask_prop_head.") for n in trainable)
    model.train()
    frozen = [m for n, m in model.named_modules()
              if not n.startswith("roi_heads.mask_prop_head") and n not in ("", "roi_heads")]
    assert frozen and not any(m.training for m in frozen)  # batch-norm statistics stay put
    with torch.no_grad():  # make the head's motion non-trivial so every part gets a gradient
        model.roi_heads.mask_prop_head.offset_conv.weight.normal_(std=0.05)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with EventStorage(0):
        losses = model([make_clip(), make_clip(n_frames=2, center=0, absent=(1, 0))])
    assert set(losses) == {"loss_mask_prop"} and torch.isfinite(losses["loss_mask_prop"])
    losses["loss_mask_prop"].backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "roi_heads.mask_prop_head.offset_in.weight" in changed
    assert all(k.startswith("roi_heads.mask_prop_head.") for k in changed)


def test_masktrack_refuses_the_propagation_stage():
    cfg = _stage_cfg()
    cfg.MODEL.META_ARCHITECTURE = "MaskTrackRCNN"
    cfg.MODEL.ROI_HEADS.NAME = "MaskTrackROIHeads"
    with pytest.raises(ValueError, match="TRAIN_PROPAGATION_ONLY"):
        build_model(cfg)


def test_warp_by_offsets_moves_a_mask_by_whole_pixels():
    from maskprop_d2.modeling.propagation import warp_by_offsets

    m = torch.zeros(1, 8, 9)
    m[0, 2:4, 3:6] = 1
    off = torch.zeros(1, 2, 8, 9)
    off[:, 0], off[:, 1] = -1.0, 2.0  # cell (y, x) samples (y - 1, x + 2): content moves +1, -2
    out = warp_by_offsets(m, off)
    expected = torch.zeros(1, 8, 9)
    expected[0, 3:5, 1:4] = 1
    assert torch.allclose(out, expected, atol=1e-6)


def test_mask_warp_starts_as_the_plain_head_and_gets_a_gradient():
    torch.manual_seed(0)
    plain = MaskPropagationHead(in_channels=6, conv_dim=8, roi_size=6)
    torch.manual_seed(0)
    warp = MaskPropagationHead(in_channels=6, conv_dim=8, roi_size=6, mask_warp=True)
    feats = torch.randn(3, 6, 12, 14)
    masks = torch.zeros(2, 12, 14)
    masks[0, 2:6, 3:7] = 1
    masks[1, 6:10, 8:12] = 1
    pair = torch.tensor([0, 1])
    a = plain(plain.reduce(feats[:2]), plain.reduce(feats[1:]), masks, pair)
    b = warp(warp.reduce(feats[:2]), warp.reduce(feats[1:]), masks, pair)
    assert torch.equal(a, b)
    b.sum().backward()
    assert warp.warp_gain.grad is not None and warp.warp_gain.grad.abs().sum() > 0
