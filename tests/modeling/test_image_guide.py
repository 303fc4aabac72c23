"""The propagation head's image guidance (``ROI_MASK_PROP_HEAD.IMAGE_GUIDE``): it starts as the
head without it, reads the target image at the crop's resolution, trains, and streams with one
backbone pass a frame."""

import pytest
import torch
from detectron2.utils.events import EventStorage

from maskprop_d2.modeling.propagation import MaskPropagationHead
from maskprop_d2.tracking import MaskPropTracker
from tests.helpers import make_clip
from tests.video_helpers import drifting_video, forward_calls, tiny_video_model

STRIDE, S = 4, 24


def _heads():
    """(plain, guided) heads with the same weights wherever both have them."""
    kw = dict(in_channels=8, conv_dim=8, roi_size=S, roi_margin=3.0, roi_min_window=6.0,
              stride=STRIDE)  # fmt: skip
    torch.manual_seed(0)
    plain = MaskPropagationHead(**kw)
    guided = MaskPropagationHead(image_guide=True, pixel_std=(58.0, 58.0, 58.0), **kw)
    missing, unexpected = guided.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("guide_conv") for k in missing)
    with torch.no_grad():
        for h in (plain, guided):
            h.offset_conv.weight.normal_(std=0.3)
            h.predictor.weight.normal_(std=0.5)
        guided.offset_conv.weight.copy_(plain.offset_conv.weight)
        guided.predictor.weight.copy_(plain.predictor.weight)
    return plain, guided


def _inputs():
    torch.manual_seed(1)
    f = torch.randn(3, 8, 24, 32)
    images = torch.randn(3, 3, 24 * STRIDE, 32 * STRIDE) * 58.0
    src = torch.rand(4, S, S)
    win = torch.tensor([[2.0, 3, 10, 11], [0, 0, 6, 6], [20, 10, 32, 24], [5, 5, 13, 12]])
    pair = torch.tensor([0, 1, 1, 0])
    return f, images, src, win, pair


def test_guided_head_starts_as_the_plain_head_and_reads_the_target_image():
    plain, guided = _heads()
    f, images, src, win, pair = _inputs()
    red = plain.reduce(f)
    pair_images = (images[:2], images[1:])
    a, _ = plain.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win)
    b, _ = guided.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win,
                                images=pair_images)  # fmt: skip
    assert b.shape == (4, S, S)
    torch.testing.assert_close(a, b)  # zero-initialised residual
    with torch.no_grad():
        guided.guide_conv2.weight.normal_(std=0.1)
    c, _ = guided.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win,
                                images=pair_images)  # fmt: skip
    other = (images[:2], images[1:] + 58.0 * torch.randn_like(images[1:]))
    d, _ = guided.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win,
                                images=other)  # fmt: skip
    assert not torch.allclose(a, c) and not torch.allclose(c, d)
    # only the windows' content counts: a change outside every window leaves the output alone
    far = (images[:2], images[1:].clone())
    far[1][:, :, 60:, :40] += 100.0  # rows 15+ (feature px) left of x = 10: no window there
    e, _ = guided.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win,
                                images=far)  # fmt: skip
    inside = torch.tensor([True, True, False, True])  # windows 0, 1, 3 stay above row 15
    torch.testing.assert_close(e[inside], c[inside])


def test_guided_head_gradients_reach_every_parameter_and_the_images_are_required():
    _, guided = _heads()
    with torch.no_grad():  # as after a first step (at init only guide_conv2 has a gradient)
        guided.guide_conv2.weight.normal_(std=0.1)
    f, images, src, win, pair = _inputs()
    f.requires_grad_(True)
    red = guided.reduce(f)
    crops, _ = guided.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win,
                                    images=(images[:2], images[1:]))  # fmt: skip
    (crops.sigmoid() * torch.rand_like(crops)).sum().backward()
    assert f.grad.abs().sum() > 0
    for name, p in guided.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="image_guide"):
        guided.forward_crops(red[:2], red[1:], None, pair, src_crops=src, windows=win)
    with pytest.raises(ValueError, match="ROI mode"):
        MaskPropagationHead(in_channels=8, conv_dim=8, roi_size=0, image_guide=True)


def test_training_step_and_streaming_with_image_guidance():
    cfg, model = tiny_video_model("MODEL.ROI_MASK_PROP_HEAD.IMAGE_GUIDE", True,
                                  "INPUT.CLIP.HALF_LENGTH", 2)  # fmt: skip
    head = model.roi_heads.mask_prop_head
    assert head.image_guide and model.roi_heads.prop_needs_images
    model.train()
    with EventStorage(0):
        losses = model([make_clip(n_frames=3, center=1)])
    losses["loss_mask_prop"].backward()
    assert head.guide_conv2.weight.grad.abs().sum() > 0
    model.eval()
    refined = []
    refine = head._refine
    head._refine = lambda *a: refined.append(a[-1].shape) or refine(*a)
    tracker = MaskPropTracker(cfg, model)
    with forward_calls(model.backbone) as calls:
        out = list(tracker.stream(drifting_video(6)))
    assert [o.frame_idx for o in out] == list(range(6)) and len(calls) == 6
    assert refined and all(s[1:] == (3, S, S) for s in refined)  # target image crops
    assert any(o.masks.any() for o in out)
    assert not tracker._images  # nothing kept after the video
