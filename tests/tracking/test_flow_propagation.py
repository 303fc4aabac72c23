"""The optical-flow propagation baseline: flow, warping, and the tracker built on them."""

import numpy as np
import pytest
import torch

from maskprop_d2.tracking import (
    VIDEO_TRACKER_REGISTRY,
    FlowPropagationTracker,
    MaskPropTracker,
    build_video_tracker,
    flow_propagation,
    optical_flow,
    tracker_class,
    warp_masks,
)
from maskprop_d2.tracking.flow_propagation import flow_to_grid
from maskprop_d2.utils.masks import mask_iou
from tests.video_helpers import drifting_video, forward_calls, tiny_video_model

STEP = (3, 2)  # (dx, dy) pixels per frame


def _moving_square(n=4, h=96, w=128, side=28, start=(30, 24), seed=0):
    """n grey frames of a textured square moving by STEP a frame over a textured background,
    and its (n, h, w) bool masks."""
    rng = np.random.default_rng(seed)
    # smooth-ish textures: random blocks of 4x4 pixels, different for object and background
    bg = np.kron(rng.integers(0, 120, (h // 4, w // 4)), np.ones((4, 4))).astype(np.uint8)
    tex = np.kron(rng.integers(130, 256, (side // 4, side // 4)), np.ones((4, 4))).astype(np.uint8)
    frames, masks = [], []
    for i in range(n):
        x0, y0 = start[0] + STEP[0] * i, start[1] + STEP[1] * i
        im = bg.copy()
        im[y0 : y0 + side, x0 : x0 + side] = tex
        m = np.zeros((h, w), dtype=bool)
        m[y0 : y0 + side, x0 : x0 + side] = True
        frames.append(im)
        masks.append(m)
    return frames, torch.from_numpy(np.stack(masks))


def test_warp_masks_with_a_constant_flow_is_an_exact_shift():
    m = torch.zeros((1, 10, 12))
    m[0, 3:6, 4:8] = 1.0
    flow = torch.zeros((2, 10, 12))
    flow[0] = 2.0  # each target pixel reads the source 2 px to its right: content moves left
    flow[1] = -1.0  # ... and 1 px above: content moves down
    out = warp_masks(m, flow)
    expected = torch.zeros_like(m)
    expected[0, 4:7, 2:6] = 1.0
    assert torch.allclose(out, expected, atol=1e-5)
    assert warp_masks(m[:0], flow).shape == (0, 10, 12)


def test_flow_to_grid_averages_cells_and_rescales_to_cells():
    flow = np.zeros((6, 9, 2), dtype=np.float32)
    flow[..., 0] = 8.0  # 8 px = 2 cells of 4 px
    flow[:, :4, 1] = 4.0  # left 4 columns: 1 cell down
    g = flow_to_grid(flow, (2, 3), 4)  # 8 x 12 padded grid (replicated border)
    assert g.shape == (2, 2, 3)
    assert torch.allclose(g[0], torch.full((2, 3), 2.0))
    assert torch.allclose(g[1, :, 0], torch.ones(2))
    assert torch.allclose(g[1, :, 1:], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="exceeds"):
        flow_to_grid(flow, (1, 3), 4)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_measures_the_motion_of_a_translating_object(method):
    frames, masks = _moving_square(2)
    f = optical_flow(frames[0], frames[1], method)
    assert f.shape == (96, 128, 2) and f.dtype == np.float32
    inner = masks[0].numpy().copy()
    inner[:, :] = False
    inner[28:48, 34:54] = True  # well inside the square in frame 0
    assert np.allclose(np.median(f[inner], axis=0), STEP, atol=0.5)


@pytest.mark.parametrize("stride", [1, 4])
def test_warped_mask_lands_where_the_object_went(stride):
    """Frame 0's mask carried forward 3 frames by successive warps (and frame 3's backwards),
    at pixel and at stride-4 grid resolution, overlaps the object's true mask there."""
    n = 4
    frames, masks = _moving_square(n)
    h, w = masks.shape[-2:]
    grid = (h // stride, w // stride)

    def to_grid(m):  # (k, h, w) bool -> (k, h', w') soft, like the trackers' grid masks
        return torch.nn.functional.avg_pool2d(m[:, None].float(), stride)[:, 0]

    fwd = to_grid(masks[:1])
    for k in range(1, n):  # mask of k-1 -> k with the flow k -> k-1
        fwd = warp_masks(fwd, flow_to_grid(optical_flow(frames[k], frames[k - 1]), grid, stride))
    bwd = to_grid(masks[-1:])
    for k in range(n - 2, -1, -1):  # mask of k+1 -> k with the flow k -> k+1
        bwd = warp_masks(bwd, flow_to_grid(optical_flow(frames[k], frames[k + 1]), grid, stride))
    # the soft mask's centroid moved with the object: (9, 6) px in 3 frames
    moved = np.array(STEP) * (n - 1)
    c0, c_last = _centroid(to_grid(masks[:1])), _centroid(to_grid(masks[-1:]))
    assert np.allclose((c_last - c0) * stride, moved, atol=1e-3)
    # Classical flow is smoothed across the object's border with the static background, so the
    # warped mask lags a little behind the object: ask for 60-110 % of the motion, along it.
    for shift in ((_centroid(fwd) - c0) * stride, (c_last - _centroid(bwd)) * stride):
        along = float(shift @ moved) / float(moved @ moved)
        across = abs(float(shift[0] * moved[1] - shift[1] * moved[0])) / np.hypot(*moved)
        assert 0.6 <= along <= 1.1 and across < 1.0, (shift, along, across)
    if stride == 1:  # and its shape with it
        assert float(mask_iou(fwd > 0.5, masks[-1:])[0, 0]) > 0.75
        assert float(mask_iou(bwd > 0.5, masks[:1])[0, 0]) > 0.75


def _centroid(m):
    """(x, y) centroid of a (1, h, w) soft mask, in grid cells."""
    m = m[0].double()
    ys, xs = torch.meshgrid(torch.arange(m.shape[0]), torch.arange(m.shape[1]), indexing="ij")
    return np.array([float((m * xs).sum() / m.sum()), float((m * ys).sum() / m.sum())])


def test_flow_tracker_is_registered_and_built_from_the_config():
    assert tracker_class("flow_propagation") is FlowPropagationTracker
    assert VIDEO_TRACKER_REGISTRY.get("FlowPropagationTracker") is FlowPropagationTracker
    cfg, model = tiny_video_model(
        "MODEL.MASKPROP.INFERENCE.TRACKER", "flow_propagation",
        "MODEL.MASKPROP.INFERENCE.FLOW_METHOD", "farneback", "INPUT.CLIP.HALF_LENGTH", 2,
    )
    t = build_video_tracker(cfg, model)
    assert isinstance(t, FlowPropagationTracker) and isinstance(t, MaskPropTracker)
    assert t.flow_method == "farneback" and t.T == 2
    with pytest.raises(ValueError, match="FLOW_METHOD"):
        build_video_tracker(cfg, model, flow_method="flownet2")


def test_flow_tracker_streams_without_the_propagation_head(monkeypatch):
    """One output per frame in order, one backbone pass per frame, two flows per frame pair,
    O(T) state, and the propagation head is never called."""
    cfg, model = tiny_video_model("INPUT.CLIP.HALF_LENGTH", 2)
    tracker = build_video_tracker(cfg, model, "flow_propagation")

    def no_head(*args, **kwargs):
        raise AssertionError("the flow baseline must not use the propagation head")

    monkeypatch.setattr(model.roi_heads, "propagate", no_head)
    monkeypatch.setattr(model.roi_heads, "reduce_prop_features", no_head)
    flows = []

    def counted_flow(*args, **kwargs):
        flows.append(1)
        return optical_flow(*args, **kwargs)

    monkeypatch.setattr(flow_propagation, "optical_flow", counted_flow)
    n = 9
    sizes = []
    outs = []
    with forward_calls(model.backbone) as calls:
        for frame_out in tracker.stream(_record_sizes(drifting_video(n), tracker, sizes)):
            outs.append(frame_out)
    assert [o.frame_idx for o in outs] == list(range(n))
    assert len(calls) == n and len(flows) == 2 * (n - 1)
    assert max(s["features"] for s in sizes) <= 2 * 2 + 1
    assert all(o.masks.shape[-2:] == (128, 192) for o in outs)
    assert any(len(o.ids) for o in outs), "thresholds at 0: the tiny model gives tracks"
    assert tracker.video_instances()


def _record_sizes(frames, tracker, sizes):
    for f in frames:
        yield f
        sizes.append(tracker.state_size())
