"""The MaskProp mask propagation head (``docs/method.md``) and its registry.

Propagating instance ``i`` of frame ``t`` to frame ``t+δ`` (one "pair" = (t, t+δ)):

1. ``reduce``: 1×1 conv + ReLU on a frame's feature map, ``C -> D`` channels. Applied once per
   frame; the result can be cached and reused by every pair that frame belongs to.
2. ``offsets``: residual block(s) on ``f_t - f_{t+δ}`` followed by a 3×3 conv to ``2k²`` channels
   (one (dy, dx) pair per kernel tap, torchvision's layout), zero-initialised so propagation starts
   as the identity motion. Computed once per pair and shared by every instance of the pair. With
   ``offset_input="correlation"`` (not in the paper) the blocks also see a local correlation
   volume: for each target cell, the cosine similarity of its feature with the source features
   at every displacement within ``correlation_radius`` cells, (2r+1)² channels, the classical
   motion cue of optical-flow networks; a 1×1 conv maps [difference, correlation] to D channels.
3. ``forward``: instance feature ``M_t^i ⊙ f_t``; ``g = deform_conv2d(M ⊙ f_t, O_{t,t+δ})`` for all
   (instance, pair) rows in one batched call; ``φ = ReLU(g + f_{t+δ})``; instance-agnostic
   attention ``A = sigmoid(conv3×3(f_{t+δ}))``; ``logits = conv1×1(φ · A)``.

Two spatial modes (constructor ``roi_size``):

* ``roi_size = 0`` (full frame): the deformable conv runs on the whole feature map of every row.
* ``roi_size = S > 0`` (ROI): each row runs on an ``S×S`` window around its source mask (the mask's
  box enlarged by ``roi_margin`` feature pixels on each side, at least ``roi_min_window`` (default
  ``S``) wide/high, kept inside the frame). Windows of exactly ``S`` are cut at native resolution,
  so inside the window the result equals the full-frame result whenever the motion stays within
  the margin; other windows are resampled to ``S×S`` (offsets are rescaled to crop pixels). With
  ``roi_min_window < S`` small objects are sampled *finer* than the feature grid: the crop is the
  head's output resolution (:meth:`forward_crops`), and the source masks can be given at that
  resolution (``src_crops``, sampled from image-resolution masks, :func:`masks_in_windows`).
  :meth:`forward` pastes the crop logits back onto the feature grid; outside its window a row
  predicts background (logit ``OUTSIDE_LOGIT``). In eval mode the offsets are computed on one
  region a row around its window when that is cheaper than the full frames
  (:meth:`offset_regions`); inside the windows they equal the full-frame offsets.

All coordinates are in feature pixels of the propagation level (pixel ``j`` has its centre at
``j``).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry
from torch import nn
from torchvision.ops import deform_conv2d, roi_align

from ..utils.masks import boxes_from_masks

__all__ = [
    "ROI_MASK_PROP_HEAD_REGISTRY",
    "build_mask_prop_head",
    "MaskPropagationHead",
    "masks_in_windows",
    "box_masks_in_windows",
    "local_correlation",
    "warp_by_offsets",
]

ROI_MASK_PROP_HEAD_REGISTRY = Registry("ROI_MASK_PROP_HEAD")
ROI_MASK_PROP_HEAD_REGISTRY.__doc__ = """
Registry for mask propagation heads: given reduced features of frame pairs and instance masks of the
source frames, predict the instances' mask logits in the target frames. The registered object is
called with ``(cfg, input_shape: ShapeSpec)``, the shape of
``cfg.MODEL.ROI_MASK_PROP_HEAD.IN_FEATURE``.
"""

# Logit given to pixels outside a row's window in ROI mode (sigmoid ≈ 2e-9: background).
OUTSIDE_LOGIT = -20.0


def build_mask_prop_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """Build the head named ``cfg.MODEL.ROI_MASK_PROP_HEAD.NAME``."""
    name = cfg.MODEL.ROI_MASK_PROP_HEAD.NAME
    return ROI_MASK_PROP_HEAD_REGISTRY.get(name)(cfg, input_shape)


# Default ROI boxes cover every source-mask cell above this value: soft masks at feature
# resolution (area fractions of small objects, pasted probabilities) rarely exceed 0.5.
BOX_MASK_THRESH = 0.05


class _ResBlock(nn.Module):
    """``ReLU(x + conv3×3(ReLU(conv3×3(x))))`` at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        for c in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(c.bias)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


@ROI_MASK_PROP_HEAD_REGISTRY.register()
class MaskPropagationHead(nn.Module):
    """MaskProp's propagation head (see the module docstring).

    Typical use (``feats``: (F, C, H, W) frame features at one level; ``src``/``dst``: (P,)
    frame indices of the pairs; ``masks``: (N, H, W) source masks; ``pair_index``: (N,) the pair
    of each row)::

        red = head.reduce(feats)                                   # once per frame (cacheable)
        logits = head(red[src], red[dst], masks, pair_index)       # (N, H, W)
    """

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        conv_dim: int,
        kernel_size: int = 3,
        num_res_blocks: int = 1,
        roi_size: int = 0,
        roi_margin: float = 4.0,
        roi_min_window: float = 0.0,
        offset_input: str = "difference",
        correlation_radius: int = 3,
        mask_warp: bool = False,
    ):
        """
        Args:
            in_channels: C, channels of the input feature level.
            conv_dim: D, the head's working width after the 1×1 reduction.
            kernel_size: k of the deformable conv (odd); offsets have 2k² channels.
            num_res_blocks: residual blocks (width D) before the offset conv; may be 0.
            roi_size: 0 = full frame; S > 0 = run the deformable conv on S×S windows (ROI mode).
            roi_margin: motion margin (feature pixels) added around each source box in ROI mode.
            roi_min_window: smallest window side (feature pixels) in ROI mode; 0 = ``roi_size``.
                Below ``roi_size``, small windows are sampled finer than the feature grid.
            offset_input: what the offset branch sees: "difference" (``f_t - f_{t+δ}``, the
                paper) or "correlation" (the difference and a local correlation volume).
            correlation_radius: r, the largest displacement (feature pixels) the correlation
                volume covers, per axis.
            mask_warp: add to the logits a learned affine map of the source mask warped by the
                centre kernel tap's offsets (the displacement the deformable conv samples the
                source at); zero-initialised, so the head starts as without it.
        """
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd, got {}".format(kernel_size))
        if roi_size < 0:
            raise ValueError("roi_size must be >= 0, got {}".format(roi_size))
        self.in_channels = in_channels
        self.conv_dim = conv_dim
        self.kernel_size = kernel_size
        self.roi_size = int(roi_size)
        self.roi_margin = float(roi_margin)
        if roi_min_window < 0:
            raise ValueError("roi_min_window must be >= 0, got {}".format(roi_min_window))
        self.roi_min_window = float(roi_min_window)

        self.reduce_conv = nn.Conv2d(in_channels, conv_dim, 1)
        nn.init.kaiming_normal_(self.reduce_conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.reduce_conv.bias)

        if offset_input not in ("difference", "correlation"):
            raise ValueError(
                "offset_input must be 'difference' or 'correlation', got {!r}".format(offset_input)
            )
        if correlation_radius < 0:
            raise ValueError("correlation_radius must be >= 0, got {}".format(correlation_radius))
        self.offset_input = offset_input
        self.correlation_radius = int(correlation_radius)
        if offset_input == "correlation":
            n_corr = (2 * self.correlation_radius + 1) ** 2
            self.offset_in = nn.Conv2d(conv_dim + n_corr, conv_dim, 1)
            nn.init.kaiming_normal_(self.offset_in.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(self.offset_in.bias)
        self.offset_blocks = nn.Sequential(*[_ResBlock(conv_dim) for _ in range(num_res_blocks)])
        self.offset_conv = nn.Conv2d(conv_dim, 2 * kernel_size * kernel_size, 3, padding=1)
        nn.init.zeros_(self.offset_conv.weight)  # zero offsets: propagation starts as identity
        nn.init.zeros_(self.offset_conv.bias)

        self.deform_weight = nn.Parameter(torch.empty(conv_dim, conv_dim, kernel_size, kernel_size))
        self.deform_bias = nn.Parameter(torch.zeros(conv_dim))
        nn.init.kaiming_normal_(self.deform_weight, mode="fan_out", nonlinearity="relu")

        self.attention_conv = nn.Conv2d(conv_dim, 1, 3, padding=1)
        nn.init.normal_(self.attention_conv.weight, std=0.01)
        nn.init.zeros_(self.attention_conv.bias)

        self.predictor = nn.Conv2d(conv_dim, 1, 1)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.zeros_(self.predictor.bias)

        self.mask_warp = bool(mask_warp)
        if self.mask_warp:
            self.warp_gain = nn.Parameter(torch.zeros(2))  # logit += a * warped + b

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        c = cfg.MODEL.ROI_MASK_PROP_HEAD
        ret = {
            "in_channels": input_shape.channels,
            "conv_dim": c.CONV_DIM,
            "kernel_size": c.KERNEL_SIZE,
            "num_res_blocks": c.NUM_RES_BLOCKS,
            "roi_size": c.ROI_SIZE,
            "roi_margin": c.ROI_MARGIN,
            "roi_min_window": c.ROI_MIN_WINDOW,
            "offset_input": c.OFFSET_INPUT,
            "correlation_radius": c.CORRELATION_RADIUS,
            "mask_warp": c.MASK_WARP,
        }
        return ret

    # ------------------------------------------------------------------ pieces
    def reduce(self, features: torch.Tensor) -> torch.Tensor:
        """(F, C, H, W) frame features -> (F, D, H, W) reduced features (1×1 conv + ReLU)."""
        return F.relu(self.reduce_conv(features))

    def offsets(self, f_src: torch.Tensor, f_dst: torch.Tensor) -> torch.Tensor:
        """(P, D, H, W) source / target reduced features -> (P, 2k², H, W) offsets.

        Channel ``2(i·k + j)`` is the dy and ``2(i·k + j) + 1`` the dx (feature pixels) of kernel
        tap (i, j), as ``torchvision.ops.deform_conv2d`` expects.
        """
        x = f_src - f_dst
        if self.offset_input == "correlation":
            corr = local_correlation(f_dst, f_src, self.correlation_radius)
            x = F.relu(self.offset_in(torch.cat([x, corr], dim=1)))
        return self.offset_conv(self.offset_blocks(x))

    def attention(self, f_dst: torch.Tensor) -> torch.Tensor:
        """(P, D, H, W) target reduced features -> (P, 1, H, W) instance-agnostic attention."""
        return torch.sigmoid(self.attention_conv(f_dst))

    def deform(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) masked source features, (N, 2k², h, w) offsets -> (N, D, h, w): the
        head's deformable conv (``deform_weight``, ``deform_bias``, zero padding); with zero
        offsets it equals a plain k×k conv. Runs in the weights' dtype (float32 under autocast)."""
        p = self.kernel_size // 2
        w = self.deform_weight
        if x.dtype != w.dtype or offset.dtype != w.dtype:
            # autocast: torchvision has no CPU autocast rule for deform_conv2d and its CPU kernel
            # no bfloat16/half version (on CUDA its autocast rule runs it in float32 too)
            x, offset = x.to(w.dtype), offset.to(w.dtype)
        return deform_conv2d(x, offset, w, self.deform_bias, padding=(p, p))

    def _segment(self, g, f_dst_rows, att_rows, src_masks, offset_rows):
        """(N, D, h, w) propagated / target features, (N, 1, h, w) attention, (N, h, w) source
        masks, (N, 2k², h, w) offsets (pixels of this map) -> (N, h, w) logits."""
        phi = F.relu(g + f_dst_rows)
        logits = self.predictor(phi * att_rows)[:, 0]
        if self.mask_warp:
            c = self.kernel_size * self.kernel_size // 2  # the centre tap
            warped = warp_by_offsets(src_masks.to(logits.dtype), offset_rows[:, 2 * c : 2 * c + 2])
            logits = logits + self.warp_gain[0] * warped + self.warp_gain[1]
        return logits

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        f_src: torch.Tensor,
        f_dst: torch.Tensor,
        masks: torch.Tensor,
        pair_index: torch.Tensor,
        offsets: Optional[torch.Tensor] = None,
        boxes: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Propagate N instance masks along P frame pairs.

        Args:
            f_src: (P, D, H, W) reduced features of each pair's source frame t.
            f_dst: (P, D, H, W) reduced features of each pair's target frame t+δ.
            masks: (N, H, W) soft or binary masks of the instances in their source frame, at
                feature resolution. An instance sent to several targets appears in several rows.
            pair_index: (N,) long, the pair of each row.
            offsets: optional (P, 2k², H, W) precomputed ``self.offsets(f_src, f_dst)``.
            boxes: ROI mode only, optional (N, 4) source boxes (x0, y0, x1, y1) in feature
                pixels; default: the box of ``masks > BOX_MASK_THRESH``.
        Returns:
            (N, H, W) mask logits of the instances in the target frames.
        """
        if self.roi_size > 0:
            crops, windows = self.forward_crops(f_src, f_dst, masks, pair_index, offsets, boxes)
            return self.paste(crops, windows, masks.shape[-2:])
        n = masks.shape[0]
        h, w = f_src.shape[-2:]
        if n == 0:
            # keep the graph connected so an empty batch still backprops (zeros)
            return f_src.new_zeros((0, h, w)) + 0.0 * self.predictor.bias.sum()
        if offsets is None:
            offsets = self.offsets(f_src, f_dst)
        att = self.attention(f_dst)
        x = masks[:, None].to(f_src.dtype) * f_src[pair_index]
        off = offsets[pair_index]
        g = self.deform(x, off)
        return self._segment(g, f_dst[pair_index], att[pair_index], masks, off)

    # ------------------------------------------------------------------ ROI mode
    def roi_windows(self, boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """(N, 4) source boxes -> (N, 4) windows (x0, y0, x1, y1) in feature pixels.

        Each window is the box enlarged by ``roi_margin``, at least ``roi_min_window`` (0:
        ``roi_size``) wide and high, centred on the box, clamped to the frame (at most the frame
        size) and integer-aligned.
        """
        h, w = image_size
        s = self.roi_min_window if self.roi_min_window > 0 else float(self.roi_size)
        m = self.roi_margin
        size = torch.stack(
            [(boxes[:, 2] - boxes[:, 0]) + 2 * m, (boxes[:, 3] - boxes[:, 1]) + 2 * m], dim=1
        )
        size = size.ceil().clamp(min=s)
        lim = boxes.new_tensor([w, h])
        size = torch.minimum(size, lim)
        centre = torch.stack(
            [(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1
        )
        origin = torch.minimum((centre - size / 2).round().clamp(min=0), lim - size)
        return torch.cat([origin, origin + size], dim=1)

    def forward_crops(
        self,
        f_src: torch.Tensor,
        f_dst: torch.Tensor,
        masks: torch.Tensor,
        pair_index: torch.Tensor,
        offsets: Optional[torch.Tensor] = None,
        boxes: Optional[torch.Tensor] = None,
        src_crops: Optional[torch.Tensor] = None,
        windows: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """ROI-mode propagation. Arguments as in :meth:`forward`, plus:

            src_crops: optional (N, S, S) source masks already sampled on each row's window (for
                example from image-resolution masks with :func:`masks_in_windows`); default: the
                crop of ``masks``.
            windows: optional (N, 4) the rows' windows (default ``roi_windows(boxes)``); must be
                given with ``src_crops``.

        Returns:
            crops: (N, S, S) logits on each row's window (S = ``roi_size``).
            windows: (N, 4) the windows (x0, y0, x1, y1), feature pixels, x1/y1 exclusive.
        """
        s = self.roi_size
        if s <= 0:
            raise RuntimeError("forward_crops needs roi_size > 0")
        n = (masks if src_crops is None else src_crops).shape[0]
        h, w = f_src.shape[-2:]
        if windows is None:
            if src_crops is not None:
                raise ValueError("src_crops needs the windows they were sampled on")
            if boxes is None:
                boxes = boxes_from_masks(masks, thresh=BOX_MASK_THRESH)
            windows = self.roi_windows(boxes.to(f_src.dtype), (h, w))
        windows = windows.to(f_src.dtype)
        if n == 0:
            return f_src.new_zeros((0, s, s)) + 0.0 * self.predictor.bias.sum(), windows
        rois = torch.cat([pair_index[:, None].to(windows.dtype), windows], dim=1)
        off_rois = rois
        if offsets is None:
            regions = None if self.training else self.offset_regions(windows, (h, w), len(f_src))
            if regions is None:
                offsets = self.offsets(f_src, f_dst)
            else:  # one region a row: the offsets of its pair around its window
                offsets, origin = self._offsets_on_regions(f_src, f_dst, pair_index, regions)
                row = torch.arange(n, device=windows.device, dtype=windows.dtype)[:, None]
                off_rois = torch.cat([row, windows - origin.repeat(1, 2)], dim=1)
        att = self.attention(f_dst)

        def crop(t, r):  # aligned=True + integer windows of size S: exact pixel copies
            return roi_align(t, r, (s, s), spatial_scale=1.0, sampling_ratio=1, aligned=True)

        if src_crops is None:
            own = torch.cat([torch.arange(n, device=masks.device)[:, None].to(windows.dtype),
                             windows], dim=1)  # fmt: skip
            src_crops = crop(masks[:, None].to(f_src.dtype), own)[:, 0]
        x = crop(f_src, rois) * src_crops[:, None].to(f_src.dtype)
        off = crop(offsets, off_rois)
        # offsets are in feature pixels; the crop resamples x by S / window_w, y by S / window_h
        scale = s / (windows[:, 2:] - windows[:, :2])  # (N, 2): (sx, sy)
        k2 = self.kernel_size * self.kernel_size
        off = off.view(n, k2, 2, s, s) * scale.flip(1).view(n, 1, 2, 1, 1)  # (dy, dx) order
        off = off.view(n, 2 * k2, s, s)
        g = self.deform(x, off)
        crops = self._segment(g, crop(f_dst, rois), crop(att, rois), src_crops, off)
        return crops, windows

    def offset_regions(self, windows: torch.Tensor, image_size: Tuple[int, int], num_pairs: int):
        """Where the offsets of ROI mode are computed in eval mode: the (N, 2) origins (x, y) of
        one region a row, all of one size (rh, rw), or None when the P full frames cost less.

        A region is the row's window plus the offset branch's reach and one cell for the crop's
        bilinear sampling on every side, moved (not cut) to lie inside the frame. Inside it the
        offsets at the window equal the full-frame offsets: the convs' zero padding falls on the
        frame's own border or at least the reach away from the window. Needs the plain
        difference input (the correlation volume reaches further); returns None otherwise.
        """
        if self.offset_input != "difference" or len(windows) == 0:
            return None
        h, w = image_size
        reach = 2 * len(self.offset_blocks) + 1 + 1  # 3×3 convs, + 1 cell of bilinear sampling
        lo = (windows[:, :2].floor() - reach).clamp(min=0)
        hi = torch.minimum(windows[:, 2:].ceil() + reach, windows.new_tensor([w, h]))
        rw, rh = [int(v) for v in (hi - lo).amax(0).tolist()]
        if len(windows) * rh * rw >= num_pairs * h * w:
            return None
        origin = torch.minimum(lo, windows.new_tensor([w - rw, h - rh]))
        return origin, (rh, rw)

    def _offsets_on_regions(self, f_src, f_dst, pair_index, regions):
        """(N, 2k², rh, rw) offsets of each row's pair on its region, and the (N, 2) region
        origins (x, y), for ``offset_regions``' ``regions``."""
        origin, (rh, rw) = regions
        o = origin.long()
        ys = o[:, 1:2] + torch.arange(rh, device=o.device)  # (N, rh)
        xs = o[:, 0:1] + torch.arange(rw, device=o.device)  # (N, rw)
        x = f_src - f_dst
        # (N, rh, rw, D): row i's region of its pair's difference map, one gather
        x = x[pair_index[:, None, None], :, ys[:, :, None], xs[:, None, :]].permute(0, 3, 1, 2)
        return self.offset_conv(self.offset_blocks(x.contiguous())), origin

    def paste(
        self, crops: torch.Tensor, windows: torch.Tensor, image_size: Tuple[int, int]
    ) -> torch.Tensor:
        """Paste (N, S, S) window logits into (N, H, W) frame logits (``OUTSIDE_LOGIT`` outside)."""
        n = crops.shape[0]
        h, w = image_size
        if n == 0:
            return crops.new_zeros((0, h, w)) + 0.0 * crops.sum()
        xs = torch.arange(w, device=crops.device, dtype=crops.dtype)
        ys = torch.arange(h, device=crops.device, dtype=crops.dtype)
        # frame pixel centre x -> normalised crop coordinate (align_corners=False)
        wx = (windows[:, 2] - windows[:, 0])[:, None]
        wy = (windows[:, 3] - windows[:, 1])[:, None]
        gx = 2 * (xs[None] - windows[:, 0:1] + 0.5) / wx - 1  # (N, W)
        gy = 2 * (ys[None] - windows[:, 1:2] + 0.5) / wy - 1  # (N, H)
        grid = torch.stack(
            [gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)], dim=-1
        )
        out = F.grid_sample(
            crops[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[:, 0]
        inside = (gx.abs() <= 1)[:, None, :] & (gy.abs() <= 1)[:, :, None]
        return torch.where(inside, out, out.new_tensor(OUTSIDE_LOGIT))


def warp_by_offsets(masks: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """(N, h, w) masks, (N, 2, h, w) (dy, dx) offsets in pixels -> (N, h, w): cell p takes the
    mask's bilinear value at ``p + offset(p)`` (0 outside the map), as ``deform_conv2d`` samples."""
    n, h, w = masks.shape
    ys = torch.arange(h, device=masks.device, dtype=offset.dtype)
    xs = torch.arange(w, device=masks.device, dtype=offset.dtype)
    gx = 2 * (xs[None, None, :] + offset[:, 1] + 0.5) / w - 1
    gy = 2 * (ys[None, :, None] + offset[:, 0] + 0.5) / h - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(masks[:, None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]  # fmt: skip


def local_correlation(f_a: torch.Tensor, f_b: torch.Tensor, radius: int) -> torch.Tensor:
    """Cosine similarity of each cell of ``f_a`` with the cells of ``f_b`` around it.

    Args:
        f_a, f_b: (P, D, H, W) feature maps.
        radius: r, the largest displacement per axis.
    Returns:
        (P, (2r+1)², H, W): channel ``(dy + r)·(2r+1) + (dx + r)`` holds
        ``cos(f_a[y, x], f_b[y + dy, x + dx])`` (0 where the displaced cell is outside the map).
    """
    a = F.normalize(f_a, dim=1, eps=1e-6)
    b = F.normalize(f_b, dim=1, eps=1e-6)
    h, w = a.shape[-2:]
    r = radius
    b = F.pad(b, (r, r, r, r))
    # one product per displacement, (2r+1)² of them: a loop over offsets, not over pixels
    out = [
        (a * b[:, :, dy : dy + h, dx : dx + w]).sum(1)
        for dy in range(2 * r + 1)
        for dx in range(2 * r + 1)
    ]
    return torch.stack(out, dim=1)


def masks_in_windows(masks: torch.Tensor, windows: torch.Tensor, stride: int, size: int):
    """Sample image-resolution masks on the head's windows.

    Args:
        masks: (N, h, w) bool/float masks in image pixels (the top-left part of the padded input).
        windows: (N, 4) windows (x0, y0, x1, y1) in feature pixels of stride ``stride``.
        size: S, the crop side.
    Returns:
        (N, S, S) float in [0, 1]: each crop cell's covered fraction (2×2 samples a cell when the
        cell is smaller than a pixel, more when larger; ``roi_align``).
    """
    n = masks.shape[0]
    if n == 0:
        return masks.new_zeros((0, size, size), dtype=torch.float32)
    idx = torch.arange(n, device=masks.device, dtype=torch.float32)[:, None]
    rois = torch.cat([idx, windows.float() * stride], dim=1)
    return roi_align(masks[:, None].float(), rois, (size, size), 1.0, 0, aligned=True)[:, 0]


def box_masks_in_windows(
    mask_probs: torch.Tensor, boxes: torch.Tensor, windows: torch.Tensor, stride: int, size: int
) -> torch.Tensor:
    """Sample box-relative soft masks (Mask R-CNN's M×M) on the head's windows, bilinearly.

    Args:
        mask_probs: (N, M, M) soft masks, each covering its box.
        boxes: (N, 4) boxes XYXY in image pixels.
        windows: (N, 4) windows in feature pixels of stride ``stride``.
        size: S, the crop side.
    Returns:
        (N, S, S) soft masks on the windows, zero outside each box.
    """
    n = mask_probs.shape[0]
    if n == 0:
        return mask_probs.new_zeros((0, size, size), dtype=torch.float32)
    cells = torch.arange(size, device=mask_probs.device, dtype=torch.float32) + 0.5
    win = windows.float() * stride
    x = win[:, 0:1] + cells[None] * (win[:, 2:3] - win[:, 0:1]) / size  # (N, S) image px
    y = win[:, 1:2] + cells[None] * (win[:, 3:4] - win[:, 1:2]) / size
    b = boxes.float()
    gx = (x - b[:, 0:1]) / (b[:, 2:3] - b[:, 0:1]).clamp(min=1e-6) * 2 - 1
    gy = (y - b[:, 1:2]) / (b[:, 3:4] - b[:, 1:2]).clamp(min=1e-6) * 2 - 1
    grid = torch.stack([gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)],
                       dim=3)  # fmt: skip
    return F.grid_sample(mask_probs[:, None].float(), grid, align_corners=False)[:, 0]
