"""The demo's drawing and video writing.

Frames are drawn with detectron2's ``Visualizer`` (masks, outlines and labels), one colour per
track id; the label size follows the output frame, and ``output_scale`` enlarges small videos so
that labels stay legible. Videos are written as H.264 (``.mp4``, ``.mkv``, ``.mov``; PyAV's
libx264, plays in browsers) or Motion JPEG (``.avi``, OpenCV).
"""

import colorsys
import os
from fractions import Fraction
from typing import List, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    "track_color",
    "draw_frame",
    "labels_for",
    "output_size",
    "open_video_writer",
    "VIDEO_EXTENSIONS",
]

H264_EXTENSIONS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
VIDEO_EXTENSIONS = tuple(H264_EXTENSIONS) + (".avi",)


def track_color(track_id: int) -> Tuple[float, float, float]:
    """A fixed, well-spread RGB colour in [0, 1] for a track id (golden-ratio hue steps)."""
    h = (track_id * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(h, 0.75, 1.0)


def output_size(width: int, height: int, scale: float) -> Tuple[int, int]:
    """(W, H) of the output video for input frames of ``width`` x ``height``: scaled, rounded to
    even numbers (H.264's 4:2:0 sampling needs them).

    Raises:
        ValueError: ``scale`` is not a number in (0, 16].
    """
    if not 0 < scale <= 16:  # NaN fails too
        raise ValueError("--output-scale must be in (0, 16], got {}".format(scale))
    return (max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2)))


def _label_position(mask: np.ndarray, text_wh, frame_wh, placed: List) -> Tuple[float, float]:
    """Top-left corner of a label: just above the mask's box (inside it when there is no room),
    inside the frame so that it is not cut at an edge, and below the labels already ``placed``
    (a list of (x, y, w, h), which it joins) that it would overlap."""
    ys, xs = np.nonzero(mask)
    (tw, th), (w, h) = text_wh, frame_wh
    x = min(max(float(xs.min()), 0.0), max(w - tw, 0.0))
    y = float(ys.min()) - th if ys.min() >= th else float(ys.min())
    y = min(max(y, 0.0), max(h - th, 0.0))
    for px, py, pw, ph in sorted(placed, key=lambda r: r[1]):
        if x < px + pw and px < x + tw and y < py + ph and py < y + th:
            y = py + ph  # overlaps: move below it
    y = min(y, max(h - th, 0.0))
    placed.append((x, y, tw, th))
    return x, y


def draw_frame(
    frame: np.ndarray,
    ids: Sequence[int],
    masks: np.ndarray,
    labels: Sequence[str],
    out_size: Tuple[int, int],
    alpha: float = 0.5,
) -> np.ndarray:
    """Masks, outlines and "id class score" labels on one frame.

    Args:
        frame: (H, W, 3) uint8 BGR.
        ids: n track ids; masks: (n, H, W) bool; labels: n strings (class name and score).
        out_size: (W', H') of the drawing (:func:`output_size`).
    Returns:
        (H', W', 3) uint8 BGR.
    """
    from detectron2.utils.visualizer import Visualizer

    h, w = frame.shape[:2]
    scale = out_size[0] / w
    vis = Visualizer(frame[:, :, ::-1], metadata=None, scale=scale)
    # label height: 1/22 of the output's shorter side, at least 9 px, in output pixels
    text_px = max(9.0, min(out_size) / 22.0)
    font_size = text_px * 72.0 / vis.output.fig.dpi / scale  # points, before Visualizer's scale
    placed = []
    for track_id, mask, label in zip(ids, masks, labels, strict=True):
        if not mask.any():
            continue
        color = track_color(int(track_id))
        vis.draw_binary_mask(mask, color=color, edge_color=color, alpha=alpha)
        text = "{} {}".format(int(track_id), label)
        # the label's extent in input pixels (sans-serif: about 0.6 em per character)
        text_wh = (0.6 * text_px * len(text) / scale, 1.4 * text_px / scale)
        pos = _label_position(mask, text_wh, (w, h), placed)
        vis.draw_text(text, pos, font_size=font_size, color=color, horizontal_alignment="left")
    out = vis.output.get_image()[:, :, ::-1]
    if (out.shape[1], out.shape[0]) != tuple(out_size):
        out = cv2.resize(out, tuple(out_size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(out)


class _H264Writer:
    """BGR frames -> H.264 (libx264, yuv420p) in an mp4 / mkv / mov container (PyAV)."""

    def __init__(self, path: str, container_format: str, fps: float, size: Tuple[int, int]):
        import av

        self._container = av.open(path, mode="w", format=container_format)
        try:
            self._stream = self._container.add_stream(
                "libx264", rate=Fraction(fps).limit_denominator(1001)
            )
            self._stream.width, self._stream.height = size
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "20", "preset": "medium"}
        except BaseException:
            self._container.close()
            raise
        self._frame_type = av.VideoFrame

    def write(self, bgr: np.ndarray) -> None:
        frame = self._frame_type.from_ndarray(bgr, format="bgr24")
        self._container.mux(self._stream.encode(frame))

    def release(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))  # flush the encoder
        finally:
            self._container.close()


class _MJPGWriter:
    """BGR frames -> Motion JPEG in an .avi (OpenCV)."""

    def __init__(self, path: str, fps: float, size: Tuple[int, int]):
        self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, tuple(size))
        if not self._writer.isOpened():
            raise OSError("OpenCV cannot open an MJPG writer for {}".format(path))

    def write(self, bgr: np.ndarray) -> None:
        self._writer.write(bgr)

    def release(self) -> None:
        self._writer.release()


def open_video_writer(path: str, ext: str, fps: float, size: Tuple[int, int]):
    """A writer (``write(bgr)``, ``release()``) of ``size`` = (W, H) frames at ``fps`` to
    ``path``, encoded for the extension ``ext`` (one of ``VIDEO_EXTENSIONS``: H.264 for .mp4,
    .mkv and .mov, MJPG for .avi).

    Raises:
        ValueError: another extension.
        OSError: the file cannot be opened for writing.
    """
    ext = ext.lower()
    if ext == ".avi":
        return _MJPGWriter(path, fps, size)
    if ext not in H264_EXTENSIONS:
        raise ValueError(
            "unsupported output video type {!r}: use one of {}".format(
                ext, ", ".join(VIDEO_EXTENSIONS)
            )
        )
    return _H264Writer(os.fspath(path), H264_EXTENSIONS[ext], fps, size)


def labels_for(ids: List[int], instance_label, names: Sequence[str]) -> List[str]:
    """"class score" of each track id, from ``instance_label(id)`` (a VideoInstance)."""
    out = []
    for y in ids:
        inst = instance_label(y)
        cid = inst.category_id
        out.append("{} {:.2f}".format(names[cid] if cid < len(names) else str(cid), inst.score))
    return out
