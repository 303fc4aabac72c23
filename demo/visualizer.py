"""Draw tracked instance masks on BGR frames: a colour that stays with the track id."""

import colorsys

import cv2
import numpy as np

__all__ = ["track_color", "draw_frame"]


def track_color(track_id: int):
    """A fixed, well-spread BGR colour for a track id (golden-ratio hue steps)."""
    h = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_frame(frame: np.ndarray, ids, masks: np.ndarray, labels, alpha: float = 0.5) -> np.ndarray:
    """Overlay masks and "id class score" tags.

    Args:
        frame: (H, W, 3) uint8 BGR.
        ids: n track ids. masks: (n, H, W) bool. labels: n strings (class name and score).
    """
    out = frame.copy()
    if len(ids) == 0:
        return out
    colors = np.array([track_color(int(i)) for i in ids], dtype=np.float32)  # (n, 3)
    m = masks.astype(np.float32)
    cover = m.sum(0)  # overlapping masks blend their colours
    tint = np.einsum("nhw,nc->hwc", m, colors) / np.maximum(cover, 1)[..., None]
    sel = cover > 0
    out[sel] = (out[sel] * (1 - alpha) + tint[sel] * alpha).astype(np.uint8)
    # text scale follows the frame size: readable at 720p, not covering objects at 96p
    scale = min(max(min(frame.shape[:2]) / 900.0, 0.25), 1.0)
    thick = max(1, int(round(scale * 2)))
    for i, mask, label in zip(ids, masks, labels, strict=True):
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        color = track_color(int(i))
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(out, contours, -1, color, 1)
        text = "{} {}".format(int(i), label)
        x, y = int(xs.min()), max(int(ys.min()) - 3, int(25 * scale))
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(out, text, (x, y), font, scale, (0, 0, 0), thick + 1, cv2.LINE_AA)
        cv2.putText(out, text, (x, y), font, scale, color, thick, cv2.LINE_AA)
    return out
