"""Optical-flow propagation baseline (the paper's Table 3, "FlowNet2 propagation").

The same detections as :class:`MaskPropTracker` (:meth:`MaskProp.detect_frame`, score threshold,
NMS, top-k), the same clip-level ID assignment and mask combination
(:class:`ClipTrackAggregator`); only the propagation differs: instead of the propagation head,
each detection's soft mask is warped from frame t to the frames t-T..t+T by dense optical flow.

The paper used FlowNet2, whose weights are not available offline; OpenCV's classical dense flow
(DIS by default, or Farnebäck) stands in for it. Flow is computed once per pair of consecutive
frames and direction, on the grey-level network input (the resized frame), when the later frame
arrives, then averaged down to the propagation grid (stride ``s`` of
``MODEL.ROI_MASK_PROP_HEAD.IN_FEATURE``) and reused by every instance of every clip: a mask goes
from frame t to t+d by d successive warps along consecutive-frame flows (and the same backwards).
The propagation head's weights are not used; the model only detects.

Memory is O(T) as for MaskProp: per frame of the window, two flow fields at grid resolution.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable

from ..modeling.meta_arch import FrameDetections
from .base import VIDEO_TRACKER_REGISTRY
from .maskprop import MaskPropTracker
from .model_interface import PropagationGrid

__all__ = ["optical_flow", "flow_to_grid", "warp_masks", "FlowPropagationTracker"]

FLOW_METHODS = ("dis", "farneback")


def optical_flow(src: np.ndarray, dst: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense optical flow from grey image ``src`` to ``dst``, both (h, w) uint8.

    Returns:
        (h, w, 2) float32 (dx, dy): the pixel (x, y) of ``src`` is at (x + dx, y + dy) in ``dst``.
    """
    if src.shape != dst.shape or src.ndim != 2:
        raise ValueError("optical_flow needs two (h, w) images of one size, got {} and {}".format(
            src.shape, dst.shape))
    src = np.ascontiguousarray(src, dtype=np.uint8)
    dst = np.ascontiguousarray(dst, dtype=np.uint8)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(src, dst, None)
    if method == "farneback":
        # pyramid scale 0.5, 4 levels, 15 px window, 3 iterations, poly_n 5, poly_sigma 1.2
        return cv2.calcOpticalFlowFarneback(src, dst, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    raise ValueError("unknown flow method {!r}; choose one of {}".format(method, FLOW_METHODS))


def flow_to_grid(flow: np.ndarray, grid_hw: Sequence[int], stride: int) -> torch.Tensor:
    """A pixel flow field averaged down to a grid of ``stride``-pixel cells.

    The grid covers the padded network input: its (H', W') cells span H' * stride rows, of which
    the image's h are the top-left part; the padding carries the image border's flow.

    Args:
        flow: (h, w, 2) flow in pixels.
        grid_hw: (H', W').
    Returns:
        (2, H', W') float32 flow in grid cells.
    """
    gh, gw = int(grid_hw[0]), int(grid_hw[1])
    f = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1)
    h, w = f.shape[-2:]
    pad_h, pad_w = gh * stride - h, gw * stride - w
    if pad_h < 0 or pad_w < 0:
        raise ValueError("flow of size {}x{} exceeds the {}x{} grid at stride {}".format(
            h, w, gh, gw, stride))
    f = F.pad(f[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
    if stride > 1:
        f = F.avg_pool2d(f[None], stride)[0]
    return f / stride


def warp_masks(masks: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warping: ``out[i, y, x] = masks[i, y + fy, x + fx]`` (bilinear, 0 outside).

    Args:
        masks: (n, H, W) float masks in the source frame.
        flow: (2, H, W) flow defined on the *target* frame's grid, pointing into the source frame
            (for a mask moving from frame a to frame b: the flow from b to a).
    Returns:
        (n, H, W) masks in the target frame.
    """
    n, h, w = masks.shape
    if n == 0:
        return masks.clone()
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    flow = flow.to(torch.float32)
    x = xs + flow[0]
    y = ys + flow[1]
    # grid_sample's normalised coordinates with align_corners=True: -1 and 1 are pixel centres
    gx = 2.0 * x / max(w - 1, 1) - 1.0
    gy = 2.0 * y / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None].to(masks.device).expand(n, h, w, 2)
    out = F.grid_sample(
        masks[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out[:, 0].to(masks.dtype)


def grey_image(image: torch.Tensor) -> np.ndarray:
    """(3, h, w) network-input image (any channel order, 0-255) -> (h, w) uint8 grey image."""
    g = image.detach().float().mean(0).round().clamp(0, 255)
    return g.to(torch.uint8).cpu().numpy()


@dataclass
class _FlowState:
    """Per-frame state of the flow tracker (frame k)."""

    grey: Optional[np.ndarray]  # (h, w) uint8, until frame k+1's flows are computed
    to_prev: Optional[torch.Tensor]  # (2, H', W') flow k -> k-1: warps a mask from k-1 to k
    prev_to: Optional[torch.Tensor]  # (2, H', W') flow k-1 -> k: warps a mask from k to k-1


@VIDEO_TRACKER_REGISTRY.register()
class FlowPropagationTracker(MaskPropTracker):
    """MaskProp's tracker with optical-flow warping in place of the propagation head.

    Usage::

        tracker = build_video_tracker(cfg, model, "flow_propagation")
        for out in tracker.stream(frames):
            ...
        instances = tracker.video_instances()

    Same outputs, delays and state sizes as :class:`MaskPropTracker` (see the module docstring).
    """

    name = "flow_propagation"
    heads_interface = PropagationGrid  # the propagation head itself is not used

    @configurable
    def __init__(self, model, *, flow_method: str = "dis", **kwargs):
        """
        Args:
            flow_method: "dis" (OpenCV's DIS, medium preset) or "farneback".
            model, kwargs: as :class:`MaskPropTracker`.
        """
        if flow_method not in FLOW_METHODS:
            raise ValueError(
                "MODEL.MASKPROP.INFERENCE.FLOW_METHOD must be one of {}, got {!r}".format(
                    FLOW_METHODS, flow_method
                )
            )
        self.flow_method = flow_method
        super().__init__(model, **kwargs)

    @classmethod
    def from_config(cls, cfg, model):
        ret = super().from_config(cfg, model)
        ret["flow_method"] = cfg.MODEL.MASKPROP.INFERENCE.FLOW_METHOD
        return ret

    def frame_state(self, idx: int, frame: Dict, det: FrameDetections) -> _FlowState:
        h, w = det.images.image_sizes[0]
        grey = grey_image(frame["image"][:, :h, :w])
        prev = self.kept_state(idx - 1)
        if prev is None or prev.grey is None or prev.grey.shape != grey.shape:
            return _FlowState(grey, None, None)
        grid = det.features[self._heads.mask_prop_in_feature].shape[-2:]
        stride = self._heads.mask_prop_stride
        to_prev = flow_to_grid(optical_flow(grey, prev.grey, self.flow_method), grid, stride)
        prev_to = flow_to_grid(optical_flow(prev.grey, grey, self.flow_method), grid, stride)
        prev.grey = None  # no later frame pairs with frame idx - 1
        return _FlowState(grey, to_prev, prev_to)

    def propagate_masks(self, t: int, frames: range, feat_masks: torch.Tensor) -> torch.Tensor:
        """Frame t's (n, H', W') masks warped step by step to each frame of ``frames``
        -> (n, F, H', W'). A step whose flow is missing (frames of different sizes) keeps the
        mask where it is."""
        out = {t: feat_masks}
        m = feat_masks
        for f in range(t + 1, frames.stop):  # forward: frame f-1 -> f with the flow f -> f-1
            flow = self.kept_state(f).to_prev
            m = m if flow is None else warp_masks(m, flow)
            out[f] = m
        m = feat_masks
        for f in range(t - 1, frames.start - 1, -1):  # backward: f+1 -> f with the flow f -> f+1
            flow = self.kept_state(f + 1).prev_to
            m = m if flow is None else warp_masks(m, flow)
            out[f] = m
        return torch.stack([out[f] for f in frames], dim=1)
