"""The propagation head at its crops' resolution (``ROI_MIN_WINDOW`` < ``ROI_SIZE``,
``FINE_CROPS``): output shape and resolution, gradients, training and streaming."""

import pytest
import torch
import torch.nn.functional as F
from detectron2.structures import BitMasks
from detectron2.utils.events import EventStorage

from maskprop_d2.modeling.mask_ops import masks_to_feature_resolution
from maskprop_d2.modeling.propagation import (
    MaskPropagationHead,
    box_masks_in_windows,
    masks_in_windows,
)
from maskprop_d2.tracking import MaskPropTracker
from maskprop_d2.tracking.clip_tracks import FrameGeometry, _crops_to_output
from maskprop_d2.utils.masks import boxes_from_masks, mask_iou
from tests.helpers import make_clip
from tests.video_helpers import drifting_video, tiny_video_model

STRIDE, S = 4, 24


def _disc(h, w, cy, cx, r):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r


def _head():
    torch.manual_seed(0)
    return MaskPropagationHead(in_channels=8, conv_dim=8, roi_size=S, roi_margin=3.0,
                               roi_min_window=6.0)  # fmt: skip


def test_small_objects_are_stored_finer_than_the_grid():
    """A 16-px disc (4 grid cells wide) stored on the head's crop and pasted back keeps its shape
    (IoU > 0.9); stored on the stride-4 grid it does not (the grid's ceiling)."""
    h, w = 96, 128
    gt = _disc(h, w, 40, 50, 8)[None]
    head = _head()
    win = head.roi_windows(boxes_from_masks(gt) / STRIDE, (h // STRIDE, w // STRIDE))
    assert ((win[:, 2:] - win[:, :2]) < S).all()  # resampled finer than the grid
    crop = masks_in_windows(gt, win, STRIDE, S)
    assert crop.shape == (1, S, S)
    fine = _crops_to_output(crop, win, FrameGeometry((h, w), (h, w), STRIDE)) > 0.5
    grid = masks_to_feature_resolution(gt, (h // STRIDE, w // STRIDE), STRIDE)
    coarse = F.interpolate(grid[None], scale_factor=STRIDE, mode="bilinear")[0] > 0.5
    iou_fine, iou_grid = float(mask_iou(fine, gt)[0, 0]), float(mask_iou(coarse, gt)[0, 0])
    assert iou_fine > 0.9
    assert iou_fine > iou_grid + 0.02


def test_box_masks_match_image_masks_on_the_windows():
    """The inference source (Mask R-CNN's 28×28 box mask) and the training source (the
    image-resolution mask) give the same binary crop."""
    h, w = 96, 128
    gt = torch.stack([_disc(h, w, 30, 40, 9), _disc(h, w, 70, 100, 6)])
    boxes = boxes_from_masks(gt)
    head = _head()
    win = head.roi_windows(boxes / STRIDE, (h // STRIDE, w // STRIDE))
    a = masks_in_windows(gt, win, STRIDE, S)
    b = box_masks_in_windows(BitMasks(gt).crop_and_resize(boxes, 28).float(), boxes, win,
                             STRIDE, S)  # fmt: skip
    assert ((a > 0.5) != (b > 0.5)).float().mean() < 0.01


def test_forward_crops_with_source_crops_shape_and_gradient():
    head = _head()
    with torch.no_grad():
        head.offset_conv.weight.normal_(std=0.3)
    f = torch.randn(3, 8, 24, 32, requires_grad=True)
    src = torch.rand(5, S, S, requires_grad=True)
    win = torch.tensor([[2.0, 3, 10, 11], [0, 0, 6, 6], [20, 10, 32, 24], [5, 5, 13, 12],
                        [1, 1, 25, 23]])  # fmt: skip
    pair = torch.tensor([0, 1, 1, 0, 1])
    red = head.reduce(f)
    crops, out_win = head.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win)
    assert crops.shape == (5, S, S)
    assert torch.equal(out_win, win)
    crops.sum().backward()
    assert f.grad.abs().sum() > 0 and src.grad.abs().sum() > 0
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="windows"):
        head.forward_crops(red[:2], red[1:], None, pair, src_crops=src)


def test_fine_crops_need_roi_mode():
    with pytest.raises(ValueError, match="FINE_CROPS needs ROI mode"):
        tiny_video_model("MODEL.ROI_MASK_PROP_HEAD.ROI_SIZE", 0)


def test_training_step_at_crop_resolution_logs_soft_and_hard_iou():
    cfg, model = tiny_video_model()
    assert model.roi_heads.fine_crops
    model.train()
    with EventStorage(0) as storage:
        losses = model([make_clip(n_frames=3, center=1)])
        keys = set(storage.latest())
    assert {"prop_siou/d1", "prop_hiou/d1"} <= keys
    losses["loss_mask_prop"].backward()
    head = model.roi_heads.mask_prop_head
    assert head.predictor.weight.grad.abs().sum() > 0
    assert head.deform_weight.grad.abs().sum() > 0


def test_tracker_streams_at_crop_resolution():
    """One output a frame, one backbone pass a frame; masks come from the crops (the grid-only
    tracker of the same weights gives different masks)."""
    cfg, model = tiny_video_model("INPUT.CLIP.HALF_LENGTH", 2)
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    frames = drifting_video(6)
    fine = list(MaskPropTracker(cfg, model).stream(frames))
    assert [o.frame_idx for o in fine] == list(range(6)) and len(calls) == 6
    model.roi_heads.fine_crops = False
    try:
        grid = list(MaskPropTracker(cfg, model).stream(frames))
    finally:
        model.roi_heads.fine_crops = True
    assert any(o.masks.any() for o in fine)
    assert fine[0].masks.shape[-2:] == grid[0].masks.shape[-2:] == (128, 192)
    assert any(
        f.masks.shape != g.masks.shape or not torch.equal(f.masks, g.masks)
        for f, g in zip(fine, grid, strict=True)
    )


@pytest.mark.parametrize("blocks", [1, 2])
def test_eval_offsets_on_regions_equal_the_full_frame_offsets(blocks):
    """In eval mode the offsets are computed on each row's region around its window when that
    costs less than the full frames; the crops are the full-frame crops (windows at the frame's
    border and inside it, one and several blocks)."""
    torch.manual_seed(0)
    head = MaskPropagationHead(in_channels=8, conv_dim=8, roi_size=S, roi_margin=3.0,
                               roi_min_window=6.0, num_res_blocks=blocks).eval()  # fmt: skip
    with torch.no_grad():
        head.offset_conv.weight.normal_(std=0.5)
        head.offset_conv.bias.normal_(std=0.5)
    f = torch.randn(3, 8, 40, 56)
    red = head.reduce(f)
    win = torch.tensor([[0.0, 0, 6, 6], [50, 34, 56, 40], [20, 10, 30, 22], [3, 30, 11, 38],
                        [47, 0, 56, 9]])  # fmt: skip
    pair = torch.tensor([0, 1, 1, 0, 1])
    src = torch.rand(5, S, S)
    regions = head.offset_regions(win, (40, 56), 2)
    assert regions is not None
    full = head.offsets(red[:2], red[1:])
    a, _ = head.forward_crops(red[:2], red[1:], None, pair, offsets=full, src_crops=src,
                              windows=win)  # fmt: skip
    b, _ = head.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    # a region covering more than the frames costs more: the full frames are used
    assert head.offset_regions(torch.tensor([[0.0, 0, 56, 40]]), (40, 56), 1) is None
