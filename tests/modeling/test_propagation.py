"""Tests of the mask propagation head (maskprop_d2/modeling/propagation.py)."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from maskprop_d2.modeling.prop_loss import mask_prop_loss
from maskprop_d2.modeling.propagation import (
    OUTSIDE_LOGIT,
    ROI_MASK_PROP_HEAD_REGISTRY,
    MaskPropagationHead,
    build_mask_prop_head,
)
from maskprop_d2.utils.masks import boxes_from_masks

C, D = 12, 8


def _head(roi_size=0, roi_margin=4.0, num_res_blocks=1, seed=0, random_offsets=False):
    torch.manual_seed(seed)
    head = MaskPropagationHead(
        in_channels=C,
        conv_dim=D,
        kernel_size=3,
        num_res_blocks=num_res_blocks,
        roi_size=roi_size,
        roi_margin=roi_margin,
    )
    if random_offsets:  # the offset conv is zero-initialised; make the motion non-trivial
        with torch.no_grad():
            head.offset_conv.weight.normal_(std=0.3)
            head.offset_conv.bias.normal_(std=1.0)
    return head


def _inputs(p, n, h, w, seed=1):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(p + 1, C, h, w, generator=g)
    masks = (torch.rand(n, h, w, generator=g) > 0.6).float()
    pair_index = torch.randint(0, p, (n,), generator=g)
    return feats, masks, pair_index


def _box_masks(n, h, w, seed=2):
    """Binary masks that are filled boxes (so ROI windows contain the whole mask)."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, h, w)
    for i in range(n):
        bw = int(torch.randint(2, max(3, w // 3), (1,), generator=g))
        bh = int(torch.randint(2, max(3, h // 3), (1,), generator=g))
        x0 = int(torch.randint(0, w - bw + 1, (1,), generator=g))
        y0 = int(torch.randint(0, h - bh + 1, (1,), generator=g))
        masks[i, y0 : y0 + bh, x0 : x0 + bw] = 1.0
    return masks


@pytest.mark.parametrize("roi_size", [0, 6])
@pytest.mark.parametrize("h,w", [(9, 13), (23, 40), (4, 5)])
@pytest.mark.parametrize("p,n", [(1, 0), (1, 1), (3, 5), (2, 0)])
def test_output_shapes(roi_size, h, w, p, n):
    head = _head(roi_size=roi_size)
    feats, masks, pair_index = _inputs(p, n, h, w)
    red = head.reduce(feats)
    assert red.shape == (p + 1, D, h, w)
    assert (red >= 0).all()
    f_src, f_dst = red[:1].expand(p, -1, -1, -1), red[1:]
    off = head.offsets(f_src, f_dst)
    assert off.shape == (p, 18, h, w)
    assert torch.count_nonzero(off) == 0  # zero init: identity motion
    out = head(f_src, f_dst, masks, pair_index)
    assert out.shape == (n, h, w)
    assert torch.isfinite(out).all()
    if roi_size:
        crops, windows = head.forward_crops(f_src, f_dst, masks, pair_index)
        assert crops.shape == (n, roi_size, roi_size) and windows.shape == (n, 4)


def test_zero_offsets_equal_plain_conv():
    head = _head()
    x = torch.randn(4, D, 11, 17)
    zero = torch.zeros(4, 18, 11, 17)
    ref = F.conv2d(x, head.deform_weight, head.deform_bias, padding=1)
    torch.testing.assert_close(head.deform(x, zero), ref, rtol=1e-4, atol=1e-4)
    # the whole head at initialisation: the deformable conv acts as a plain conv
    feats, masks, pair_index = _inputs(2, 5, 11, 17)
    red = head.reduce(feats)
    f_src, f_dst = red[:2], red[1:]
    out = head(f_src, f_dst, masks, pair_index)
    g = F.conv2d(
        masks[:, None] * f_src[pair_index], head.deform_weight, head.deform_bias, padding=1
    )
    att = torch.sigmoid(head.attention_conv(f_dst))[pair_index]
    ref = head.predictor(F.relu(g + f_dst[pair_index]) * att)[:, 0]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def _grad_norms(head, feats, masks, pair_index, gt):
    head.zero_grad()
    red = head.reduce(feats)
    out = head(red[:2], red[1:], masks, pair_index)
    mask_prop_loss(out, gt).backward()
    return {
        k: (v.grad.abs().sum().item() if v.grad is not None else 0.0)
        for k, v in head.named_parameters()
    }


@pytest.mark.parametrize("roi_size", [0, 8])
def test_gradients_reach_offsets_and_attention(roi_size):
    head = _head(roi_size=roi_size)
    feats, masks, pair_index = _inputs(2, 4, 10, 14)
    gt = torch.roll(masks, shifts=2, dims=-1)
    grads = _grad_norms(head, feats, masks, pair_index, gt)
    # the zero-initialised offset conv gets a gradient (through deform_conv2d's offset input)
    assert grads["offset_conv.weight"] > 0 and grads["offset_conv.bias"] > 0
    for k in [
        "attention_conv.weight",
        "attention_conv.bias",
        "deform_weight",
        "deform_bias",
        "predictor.weight",
        "reduce_conv.weight",
    ]:
        assert grads[k] > 0, k
    # after one SGD step the offset conv is non-zero and the residual blocks get gradients too
    with torch.no_grad():
        for prm in head.parameters():
            if prm.grad is not None:
                prm -= 1.0 * prm.grad
    assert torch.count_nonzero(head.offset_conv.weight) > 0
    grads = _grad_norms(head, feats, masks, pair_index, gt)
    for k in [
        "offset_blocks.0.conv1.weight",
        "offset_blocks.0.conv2.weight",
        "offset_conv.weight",
        "attention_conv.weight",
    ]:
        assert grads[k] > 0, k


def test_empty_batch_backprops():
    head = _head()
    feats, masks, pair_index = _inputs(2, 0, 6, 7)
    red = head.reduce(feats)
    out = head(red[:2], red[1:], masks, pair_index)
    assert out.shape == (0, 6, 7)
    mask_prop_loss(out, torch.zeros(0, 6, 7)).backward()


def _reference_loop(head, f_src, f_dst, masks, pair_index):
    """Per-instance reference: offsets / attention of the instance's own pair, one row at a time."""
    outs = []
    for i in range(masks.shape[0]):
        p = int(pair_index[i])
        fs, fd = f_src[p : p + 1], f_dst[p : p + 1]
        off = head.offset_conv(head.offset_blocks(fs - fd))
        g = deform_conv2d(
            masks[i][None, None] * fs, off, head.deform_weight, head.deform_bias, padding=(1, 1)
        )
        att = torch.sigmoid(head.attention_conv(fd))
        outs.append(head.predictor(F.relu(g + fd) * att)[0, 0])
    return torch.stack(outs)


def test_batched_equals_reference_loop():
    head = _head(random_offsets=True, num_res_blocks=2).double()
    feats, masks, pair_index = _inputs(3, 7, 12, 15)
    masks = masks * torch.rand(masks.shape, generator=torch.Generator().manual_seed(3))  # soft
    with torch.no_grad():
        red = head.reduce(feats.double())
        f_src, f_dst = red[[0, 0, 1]], red[1:]
        off = head.offsets(f_src, f_dst)
        assert off.abs().max() > 0.5  # genuinely deformable
        out = head(f_src, f_dst, masks.double(), pair_index)
        out_pre = head(f_src, f_dst, masks.double(), pair_index, offsets=off)
        ref = _reference_loop(head, f_src, f_dst, masks.double(), pair_index)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out_pre, ref, rtol=1e-9, atol=1e-9)


def test_boxes_from_masks():
    m = torch.zeros(3, 6, 9)
    m[0, 1:4, 2:7] = 1.0
    m[1, 5, 8] = 0.9
    m[2, 0, 0] = 0.4  # below the 0.5 threshold: empty
    torch.testing.assert_close(
        boxes_from_masks(m, thresh=0.5), torch.tensor([[2.0, 1, 7, 4], [8, 5, 9, 6], [0, 0, 0, 0]])
    )


def test_roi_mode_equals_full_frame_inside_window():
    """Windows no larger than roi_size are cut at native resolution: exact inside the window."""
    full = _head(random_offsets=True).double()
    roi = _head(roi_size=14, roi_margin=2.0).double()
    roi.load_state_dict(full.state_dict())
    h, w, n = 20, 31, 6
    feats, _, pair_index = _inputs(2, n, h, w)
    masks = _box_masks(n, h, w).double()
    with torch.no_grad():
        red = full.reduce(feats.double())
        f_src, f_dst = red[:2], red[1:]
        ref = full(f_src, f_dst, masks, pair_index)
        crops, windows = roi.forward_crops(f_src, f_dst, masks, pair_index)
        pasted = roi(f_src, f_dst, masks, pair_index)
    assert ((windows[:, 2:] - windows[:, :2]) == 14).all()  # no resampling in this setting
    assert (windows[:, :2] >= 0).all() and (windows[:, 2] <= w).all() and (windows[:, 3] <= h).all()
    boxes = boxes_from_masks(masks, thresh=0.5)
    assert (windows[:, :2] <= boxes[:, :2]).all() and (windows[:, 2:] >= boxes[:, 2:]).all()
    for i in range(n):
        x0, y0, x1, y1 = [int(v) for v in windows[i]]
        torch.testing.assert_close(crops[i], ref[i, y0:y1, x0:x1], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(
            pasted[i, y0:y1, x0:x1], ref[i, y0:y1, x0:x1], rtol=1e-9, atol=1e-9
        )
        outside = torch.ones(h, w, dtype=torch.bool)
        outside[y0:y1, x0:x1] = False
        assert (pasted[i][outside] == OUTSIDE_LOGIT).all()


def test_roi_mode_rescales_offsets_when_resampling():
    """A constant motion of dx feature pixels stays dx feature pixels in a 2x-downsampled crop."""
    h = w = 32
    dx = 6.0
    heads = {}
    for s in (0, 16):
        hd = MaskPropagationHead(
            in_channels=1, conv_dim=1, kernel_size=3, num_res_blocks=0, roi_size=s, roi_margin=2.0
        ).double()
        with torch.no_grad():
            hd.offset_conv.bias.zero_()
            hd.offset_conv.bias[1::2] = dx  # every tap moves by +dx in x
            hd.deform_weight.zero_()
            hd.deform_weight[0, 0, 1, 1] = 1.0  # centre tap only: g(p) = x(p + offset)
            hd.deform_bias.zero_()
            hd.attention_conv.weight.zero_()
            hd.predictor.weight.fill_(1.0)
            hd.predictor.bias.zero_()
        heads[s] = hd
    yy, xx = torch.meshgrid(torch.arange(h).double(), torch.arange(w).double(), indexing="ij")
    blob = torch.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / (2 * 4.0**2))
    f_src = blob[None, None]
    f_dst = torch.zeros_like(f_src)
    masks = torch.ones(1, h, w, dtype=torch.float64)
    pi = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        full = heads[0](f_src, f_dst, masks, pi)[0]
        crops, windows = heads[16].forward_crops(f_src, f_dst, masks, pi)
        roi = heads[16](f_src, f_dst, masks, pi)[0]
    torch.testing.assert_close(windows[0], torch.tensor([0.0, 0, 32, 32], dtype=torch.float64))
    assert int(full[16].argmax()) == 16 - int(dx)  # g(x) = blob(x + dx): peak moves to 16 - dx
    assert abs(int(roi[16].argmax()) - (16 - dx)) <= 1  # unscaled offsets would give 16 - 2 dx
    assert (roi - full).abs().max() < 0.1 * full.max()


def test_registry_builds_from_cfg():
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec

    from maskprop_d2 import add_maskprop_config

    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.MODEL.ROI_MASK_PROP_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_MASK_PROP_HEAD.NUM_RES_BLOCKS = 2
    assert "MaskPropagationHead" in ROI_MASK_PROP_HEAD_REGISTRY
    head = build_mask_prop_head(cfg, ShapeSpec(channels=32, stride=8))
    assert isinstance(head, MaskPropagationHead)
    assert (
        head.in_channels == 32
        and head.conv_dim == 16
        and head.roi_size == cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_SIZE
    )
    assert len(head.offset_blocks) == 2
    assert head.offset_conv.out_channels == 2 * cfg.MODEL.ROI_MASK_PROP_HEAD.KERNEL_SIZE**2
    # the ROI keys are honoured
    cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_SIZE = 24
    cfg.MODEL.ROI_MASK_PROP_HEAD.ROI_MARGIN = 3.0
    head = build_mask_prop_head(cfg, ShapeSpec(channels=32, stride=8))
    assert head.roi_size == 24 and head.roi_margin == 3.0
    # plain-argument construction (no cfg) also works
    head = MaskPropagationHead(in_channels=4, conv_dim=4)
    assert head.kernel_size == 3
