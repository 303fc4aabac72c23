"""Deterministic synthetic YouTube-VIS dataset (JPEG frames + ``train.json`` / ``valid.json``).

Layout written under ``DIR`` (``valid.json`` carries annotations too, so local metrics work)::

    DIR/train.json    DIR/train/JPEGImages/<video_name>/00000.jpg ...
    DIR/valid.json    DIR/valid/JPEGImages/<video_name>/00000.jpg ...

The JSONs follow the YouTube-VIS format of ``docs/formats.md`` (compressed RLE masks,
``null`` where an object is absent). What makes it a VIS problem rather than a detection toy:

* 5 classes that differ in **shape and texture** (gradient disc, striped square, dotted triangle,
  checkered ellipse, ringed star); each instance gets a random colour pair, so colour alone does
  not give the class;
* objects move with velocity + acceleration, rotate, change scale, enter and leave the frame;
* scripted events per video: a **same-class crossing** (two objects of one class pass through the
  same point) and an **occlusion** (a large, nearer object passes over a small one so that the
  small one is fully hidden for a few frames — ``null`` there — and then reappears);
* every object has a depth; masks are the **visible** part (nearer objects subtracted);
* textured, slowly panning backgrounds (low-frequency pattern + waves) with per-frame noise.

``difficulty="hard"`` adds objects, larger objects, faster motion, an occlusion and a crossing in
every video (plus a second occlusion when there is room) and more noise.

``difficulty="occlusion"`` isolates long occlusions: 64-frame videos by default, and in every
video one or two small objects are hidden by a nearer occluder that stays over them for 8-40
frames (it arrives, moves with the object, then leaves) before they reappear. ``info`` of the
JSONs counts the annotated objects' gaps (``long_gaps``: runs of >= 8 frames without a mask
between two visible frames).

Defaults (a CPU quickstart): 300 train / 60 val videos, 24 frames, 128x96 (W x H), up to 4 objects
per video (6 for ``hard``), seed 0. Generating the default dataset takes a few seconds.

CLI::

    python -m maskprop_d2.data.synthetic --out DIR [--num-train N] [--num-val N] [--length L]
        [--height H] [--width W] [--max-objects K] [--seed S]
        [--difficulty standard|hard|occlusion]
        [--overwrite]

Writing is atomic (built in a temp dir next to ``DIR``, then renamed into place); Ctrl-C or
SIGTERM leaves nothing behind. ``--overwrite`` replaces ``DIR`` only when it holds a dataset this
generator wrote (its JSONs' ``info.generator``); anything else there is an error. This module
imports only numpy, OpenCV and pycocotools.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_util

# in a module of its own: registering the splits needs them without importing this module
from .synthetic_classes import SYNTHETIC_CATEGORIES, SYNTHETIC_COLORS

__all__ = [
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_COLORS",
    "DIFFICULTIES",
    "DEFAULT_SYNTHETIC_ROOT",
    "generate_synthetic_dataset",
    "ensure_synthetic_dataset",
    "render_synthetic_video",
    "main",
]

logger = logging.getLogger(__name__)

DIFFICULTIES = ("standard", "hard", "occlusion")
# A gap (frames without a mask between two visible frames) counted in info["long_gaps"].
LONG_GAP = 8

_DATASET_VERSION = "1.0"
_SPLITS = (("train", 0), ("valid", 1))  # (folder / json name, seed stream)
_GENERATOR = "maskprop_d2.data.synthetic"  # the JSONs' info.generator: this module's marker
_NUM_CLASSES = len(SYNTHETIC_CATEGORIES)
# Radius (in object-radius units) of the largest centred disc inside each shape: used to size an
# occluder that fully hides a smaller object. The star is never used as an occluder.
_INSCRIBED = {1: 1.0, 2: 0.8, 3: 0.5, 4: 0.6}
_BOUND = 1.15  # every shape lies within _BOUND * radius of its centre (square corners: 0.8*sqrt 2)

_PROFILES = {
    "standard": dict(
        default_max_objects=4,
        min_objects_frac=0.5,
        radius=(0.07, 0.15),  # object radius / min(H, W)
        small_radius=(0.06, 0.09),  # occluded target radius / min(H, W)
        speed=(0.4, 2.0),  # px / frame at min(H, W) = 96
        accel=0.08,  # px / frame^2 at min(H, W) = 96
        scale_rate=0.025,  # |d log(radius) / dt|
        spin=0.08,  # rad / frame
        occluder_speed=(1.8, 3.0),  # occluder speed relative to its target
        hidden_halfwidth=(1, 2),  # target fully hidden for 2k+1 frames, k in this range
        p_occlusion=0.6,
        p_crossing=0.5,
        second_occlusion=False,
        noise=5.0,
    ),
    "hard": dict(
        default_max_objects=6,
        min_objects_frac=0.75,
        radius=(0.08, 0.18),
        small_radius=(0.06, 0.1),
        speed=(0.7, 3.2),
        accel=0.14,
        scale_rate=0.035,
        spin=0.12,
        occluder_speed=(2.5, 4.0),
        hidden_halfwidth=(1, 3),
        p_occlusion=1.0,
        p_crossing=1.0,
        second_occlusion=True,
        noise=9.0,
    ),
}
# standard motion and noise; every video has a long occlusion (a second one when there is room):
# the occluder arrives, stays over its target for `hold` frames, then leaves
_PROFILES["occlusion"] = dict(
    _PROFILES["standard"],
    default_length=64,
    min_objects_frac=0.75,
    hidden_halfwidth=(1, 1),
    hold=(6, 38),  # frames the occluder stays on its target (hidden 8-40 frames in all)
    p_occlusion=1.0,
    p_crossing=0.0,
    second_occlusion=True,
)


def DEFAULT_SYNTHETIC_ROOT() -> str:  # noqa: N802 (name requested by the project)
    """``$MASKPROP_SYNTHETIC_ROOT``, else ``$DETECTRON2_DATASETS/synthetic_ytvis``.

    ``$DETECTRON2_DATASETS`` defaults to ``datasets``."""
    root = os.environ.get("MASKPROP_SYNTHETIC_ROOT") or os.path.join(
        os.environ.get("DETECTRON2_DATASETS", "datasets"), "synthetic_ytvis"
    )
    return os.path.expanduser(root)


# --------------------------------------------------------------------------------------------
# Scene sampling: per object, arrays over frames of centre (L, 2), radius (L,), angle (L,).
# --------------------------------------------------------------------------------------------
def _unit(theta: float) -> np.ndarray:
    return np.array([math.cos(theta), math.sin(theta)])


def _random_colors(rng: np.random.Generator):
    """A random RGB colour and a contrasting second colour for the texture."""
    c1 = rng.uniform(40, 255, 3)
    if rng.random() < 0.5:
        c2 = c1 * rng.uniform(0.2, 0.45)
    else:
        c2 = c1 + (255.0 - c1) * rng.uniform(0.55, 0.85)
    return c1.astype(np.float32), c2.astype(np.float32)


def _make_object(rng, P, cid, t, p_a, v, a, t_a, r_a, g) -> Dict:
    """Object with ``centre(t) = p_a + v dt + a dt^2 / 2`` and ``radius(t) = r_a exp(g dt)``."""
    dt = (t - t_a)[:, None]
    c1, c2 = _random_colors(rng)
    return {
        "category_id": int(cid),
        "center": p_a[None, :] + v[None, :] * dt + 0.5 * a[None, :] * dt**2,
        "radius": r_a * np.exp(g * (t - t_a)),
        "angle": rng.uniform(0, 2 * math.pi) + rng.uniform(-1, 1) * P["spin"] * t,
        "colors": (c1, c2),
        "depth": rng.random(),  # smaller is nearer
    }


def _free_object(rng, P, H, W, L, S, k) -> Dict:
    """A randomly moving object; some enter the frame from an edge, some leave through one."""
    t = np.arange(L, dtype=np.float64)
    cid = rng.integers(1, _NUM_CLASSES + 1)
    r_a = rng.uniform(*P["radius"]) * S
    g = rng.uniform(-1, 1) * P["scale_rate"]
    speed = rng.uniform(*P["speed"]) * k
    role = rng.choice(3, p=[0.45, 0.3, 0.25])  # free, enter, exit
    if role == 0:
        t_a = float(rng.integers(0, L))
        p_a = np.array([rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, 0.9) * H])
        v = _unit(rng.uniform(0, 2 * math.pi)) * speed
        a = _unit(rng.uniform(0, 2 * math.pi)) * rng.uniform(0, P["accel"]) * k
        return _make_object(rng, P, cid, t, p_a, v, a, t_a, r_a, g)
    edge = rng.integers(4)  # left, right, top, bottom
    s = rng.uniform(0.15, 0.85)
    p_a, inward = [
        (np.array([0.0, s * H]), np.array([1.0, 0.0])),
        (np.array([W - 1.0, s * H]), np.array([-1.0, 0.0])),
        (np.array([s * W, 0.0]), np.array([0.0, 1.0])),
        (np.array([s * W, H - 1.0]), np.array([0.0, -1.0])),
    ][edge]
    speed = max(speed, 1.0 * k)
    tilt = rng.uniform(-0.8, 0.8)
    d = np.array(
        [inward[0] * math.cos(tilt) - inward[1] * math.sin(tilt),
         inward[0] * math.sin(tilt) + inward[1] * math.cos(tilt)]
    )
    # frames needed to travel one bounding radius (+2 px) across the edge
    n_cross = int(math.ceil((_BOUND * r_a + 2.0) / (speed * math.cos(tilt))))
    n_cross += int(rng.integers(0, 4))
    a_mag = rng.uniform(0, P["accel"]) * k
    if role == 1:  # enters: at t_a its centre is on the edge, decelerating as it comes in
        t_a = float(min(L - 1, n_cross))
        v, a = d * speed, -d * a_mag
    else:  # leaves: at t_a its centre is on the edge, accelerating outwards
        t_a = float(max(0, L - 1 - n_cross))
        v, a = -d * speed, -d * a_mag
    return _make_object(rng, P, cid, t, p_a, v, a, t_a, r_a, g)


def _occlusion_pair(rng, P, H, W, L, S, k) -> List[Dict]:
    """A small target and a larger, nearer occluder that passes over it, hiding it completely for
    ``2 h + 1`` frames around ``t_c`` (the occluder's inscribed disc contains the target there)."""
    t = np.arange(L, dtype=np.float64)
    r_t = rng.uniform(*P["small_radius"]) * S
    if "hold" in P:  # hidden from about t_c to t_c + hold, back a few frames before the end
        hold = int(rng.integers(P["hold"][0], P["hold"][1] + 1))
        t_c = float(rng.integers(3, max(4, L - hold - 6)))
    else:
        t_c = float(rng.integers(L // 3, max(L // 3 + 1, (2 * L) // 3 + 1)))
    margin = _BOUND * r_t + 2.0
    p_c = np.array([rng.uniform(margin, max(margin, W - margin)),
                    rng.uniform(margin, max(margin, H - margin))])
    v_t = _unit(rng.uniform(0, 2 * math.pi)) * rng.uniform(0.2, 0.9) * k
    a_t = _unit(rng.uniform(0, 2 * math.pi)) * rng.uniform(0, 0.3 * P["accel"]) * k
    g_t = rng.uniform(-0.01, 0.01)
    cid_t = rng.integers(1, _NUM_CLASSES + 1)
    target = _make_object(rng, P, cid_t, t, p_c, v_t, a_t, t_c, r_t, g_t)

    w = _unit(rng.uniform(0, 2 * math.pi)) * rng.uniform(*P["occluder_speed"]) * k
    h = int(rng.integers(P["hidden_halfwidth"][0], P["hidden_halfwidth"][1] + 1))
    g_o = rng.uniform(-0.01, 0.01)
    dt = np.arange(-h, h + 1, dtype=np.float64)
    need = r_t * np.exp(g_t * dt) + np.abs(dt) * np.linalg.norm(w) + 1.0
    cid_o = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.15, 0.2]))
    r_o = float(np.max(need / (_INSCRIBED[cid_o] * np.exp(g_o * dt))))
    if r_o > 0.45 * S:  # too big for the frame with this shape: use a disc
        cid_o = 1
        r_o = float(np.max(need / np.exp(g_o * dt)))
    occluder = _make_object(rng, P, cid_o, t, p_c, v_t + w, a_t, t_c, r_o, g_o)
    # same trajectory as the target plus a constant relative velocity w (stopped for `hold`
    # frames after t_c when the profile has a hold: the occluder rides on its target)
    dt_rel = t - t_c
    if "hold" in P:
        dt_rel = np.where(t <= t_c, t - t_c, np.maximum(t - t_c - hold, 0.0))
        # the occluder grows with the target's scale while it rides on it
        g_o = g_t
        occluder["radius"] = r_o * np.exp(g_t * (t - t_c))
    occluder["center"] = target["center"] + dt_rel[:, None] * w[None, :]
    lo, hi = sorted((target["depth"], occluder["depth"]))
    occluder["depth"], target["depth"] = lo, hi  # the occluder is nearer
    return [target, occluder]


def _crossing_pair(rng, P, H, W, L, S, k) -> List[Dict]:
    """Two objects of the same class and similar size whose paths cross at ``t_x``."""
    t = np.arange(L, dtype=np.float64)
    cid = rng.integers(1, _NUM_CLASSES + 1)
    t_x = float(rng.integers(L // 4, max(L // 4 + 1, (3 * L) // 4 + 1)))
    r0 = rng.uniform(*P["radius"]) * S
    p_x = np.array([rng.uniform(0.25, 0.75) * W, rng.uniform(0.25, 0.75) * H])
    th = rng.uniform(0, 2 * math.pi)
    out = []
    for r, theta in [
        (r0, th),
        (r0 * rng.uniform(0.8, 1.25), th + rng.choice([-1, 1]) * rng.uniform(1.0, 3.1)),
    ]:
        speed = max(rng.uniform(*P["speed"]), 1.0) * k
        off = rng.uniform(-0.3, 0.3, 2) * r
        a = _unit(rng.uniform(0, 2 * math.pi)) * rng.uniform(0, P["accel"]) * k
        g = rng.uniform(-0.5, 0.5) * P["scale_rate"]
        out.append(_make_object(rng, P, cid, t, p_x + off, _unit(theta) * speed, a, t_x, r, g))
    return out


def _sample_scene(rng, H, W, L, max_objects, difficulty) -> List[Dict]:
    """All objects of one video (scripted events first, then free movers)."""
    P = _PROFILES[difficulty]
    S = float(min(H, W))
    k = S / 96.0  # motion scale: parameters are given for min(H, W) = 96
    lo = max(1, min(max_objects, int(math.ceil(P["min_objects_frac"] * max_objects))))
    n = int(rng.integers(lo, max_objects + 1))
    events = []
    if n >= 2 and rng.random() < P["p_occlusion"]:
        events.append(_occlusion_pair)
    if n - 2 * len(events) >= 2 and rng.random() < P["p_crossing"]:
        events.append(_crossing_pair)
    if P["second_occlusion"] and n - 2 * len(events) >= 2:
        events.append(_occlusion_pair)
    objects: List[Dict] = []
    for make in events:
        objects += make(rng, P, H, W, L, S, k)
    while len(objects) < n:
        objects.append(_free_object(rng, P, H, W, L, S, k))
    return objects


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def _shape(cid: int, u: np.ndarray, v: np.ndarray):
    """Inside-mask and texture weight in [0, 1] on object-local unit coordinates ``(u, v)``."""
    rho = np.sqrt(u * u + v * v)
    if cid == 1:  # disc, radial gradient
        return rho <= 1.0, np.clip(rho, 0, 1) ** 1.3
    if cid == 2:  # square, stripes
        inside = np.maximum(np.abs(u), np.abs(v)) <= 0.8
        return inside, (np.sin(u * (3.75 * math.pi)) > 0).astype(np.float32)
    if cid == 3:  # equilateral triangle (circumradius 1), dots
        inside = np.ones(u.shape, bool)
        for ang in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
            inside &= u * math.cos(ang) + v * math.sin(ang) <= 0.5
        du = np.mod(u, 0.4) - 0.2
        dv = np.mod(v, 0.4) - 0.2
        return inside, (du * du + dv * dv < 0.11**2).astype(np.float32)
    if cid == 4:  # ellipse 1 : 0.6, checkerboard
        inside = u * u + (v / 0.6) ** 2 <= 1.0
        return inside, ((np.floor(u / 0.4) + np.floor(v / 0.4)) % 2).astype(np.float32)
    # star, concentric rings
    inside = rho <= 0.66 + 0.34 * np.cos(5 * np.arctan2(v, u))
    return inside, (np.sin(rho * (5.0 * math.pi)) > 0).astype(np.float32)


def _background(rng, H, W, L) -> np.ndarray:
    """(L, H, W, 3) float32 textured background: low-frequency field + waves, slow camera pan."""
    pad = int(0.25 * max(H, W)) + 2
    CH, CW = H + 2 * pad, W + 2 * pad
    canvas = np.zeros((CH, CW, 3), np.float32) + rng.uniform(50, 200, 3).astype(np.float32)
    for cells, amp in ((12, rng.uniform(40, 80)), (4, rng.uniform(10, 25))):
        field = rng.uniform(-1, 1, (max(2, CH // cells), max(2, CW // cells), 3))
        field = cv2.resize(field.astype(np.float32), (CW, CH), interpolation=cv2.INTER_CUBIC)
        canvas += field * amp
    yy, xx = np.mgrid[0:CH, 0:CW].astype(np.float32)
    for _ in range(2):
        th = rng.uniform(0, math.pi)
        period = rng.uniform(0.3, 1.0) * max(H, W)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin((xx * math.cos(th) + yy * math.sin(th)) * (2 * math.pi / period) + phase)
        canvas += wave[..., None] * rng.uniform(-20, 20, 3).astype(np.float32)
    # camera pan: integer crop offsets moving linearly inside the padded canvas
    start = rng.uniform(0, 2 * pad, 2)
    vel = rng.uniform(-1, 1, 2) * 0.6
    offs = np.clip(start[None] + vel[None] * np.arange(L)[:, None], 0, 2 * pad).round().astype(int)
    frames = np.stack([canvas[oy:oy + H, ox:ox + W] for ox, oy in offs])
    frames += rng.uniform(-8, 8, (L, 1, 1, 1)).astype(np.float32)  # brightness flicker
    return frames


def _render(rng, H, W, L, objects, noise):
    """Frames (L, H, W, 3) uint8 RGB, amodal and visible masks (N, L, H, W) bool."""
    N = len(objects)
    frames = _background(rng, H, W, L)
    amodal = np.zeros((N, L, H, W), bool)
    order = sorted(range(N), key=lambda i: -objects[i]["depth"])  # far to near
    for t in range(L):
        img = frames[t]
        for i in order:
            o = objects[i]
            cx, cy = o["center"][t]
            r = float(o["radius"][t])
            ext = _BOUND * r + 1.0
            x0, x1 = max(0, int(math.floor(cx - ext))), min(W - 1, int(math.ceil(cx + ext)))
            y0, y1 = max(0, int(math.floor(cy - ext))), min(H - 1, int(math.ceil(cy + ext)))
            if x0 > x1 or y0 > y1 or r <= 0:
                continue
            dx = np.arange(x0, x1 + 1, dtype=np.float32)[None, :] - cx
            dy = np.arange(y0, y1 + 1, dtype=np.float32)[:, None] - cy
            ca, sa = math.cos(o["angle"][t]), math.sin(o["angle"][t])
            u = (dx * ca + dy * sa) / r
            v = (dy * ca - dx * sa) / r
            inside, tex = _shape(o["category_id"], u, v)
            if not inside.any():
                continue
            c1, c2 = o["colors"]
            shade = 1.0 - 0.2 * np.clip(u * u + v * v, 0, 1)
            color = (c1 * (1 - tex[..., None]) + c2 * tex[..., None]) * shade[..., None]
            crop = img[y0:y1 + 1, x0:x1 + 1]
            crop[inside] = color[inside]
            amodal[i, t, y0:y1 + 1, x0:x1 + 1] = inside
    frames += rng.standard_normal(frames.shape, dtype=np.float32) * noise  # sensor noise
    frames = np.clip(frames + 0.5, 0, 255).astype(np.uint8)
    visible = np.zeros_like(amodal)
    covered = np.zeros((L, H, W), bool)
    for i in reversed(order):  # near to far
        visible[i] = amodal[i] & ~covered
        covered |= amodal[i]
    return frames, amodal, visible


def _video_rng(seed: int, split_stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), split_stream, int(index)]))


def _resolve(difficulty: str, max_objects: Optional[int]) -> int:
    if difficulty not in _PROFILES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if max_objects is None:
        max_objects = _PROFILES[difficulty]["default_max_objects"]
    if int(max_objects) < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    return int(max_objects)


def resolve_length(difficulty: str, length: Optional[int]) -> int:
    """``length``, or the difficulty's default video length (24; 64 for "occlusion")."""
    if difficulty not in _PROFILES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    return int(_PROFILES[difficulty].get("default_length", 24) if length is None else length)


def count_long_gaps(present: np.ndarray, min_len: int = LONG_GAP) -> int:
    """Runs of at least ``min_len`` frames where a track is absent between two frames where it is
    present. ``present``: (L,) bool."""
    idx = np.flatnonzero(present)
    return int((np.diff(idx) - 1 >= min_len).sum()) if len(idx) > 1 else 0


def render_synthetic_video(
    seed: int = 0,
    split: str = "train",
    index: int = 0,
    height: int = 96,
    width: int = 128,
    length: Optional[int] = None,
    max_objects: Optional[int] = None,
    difficulty: str = "standard",
) -> Dict:
    """Ground-truth/debug hook: render video ``index`` (0-based) of ``split`` exactly as
    ``generate_synthetic_dataset`` draws it (before JPEG compression).

    Returns ``{"frames": (L, H, W, 3) uint8 RGB, "objects": [{"category_id", "depth",
    "amodal": (L, H, W) bool (full shape, clipped to the frame), "visible": (L, H, W) bool}]}``,
    objects in creation order; the JSON keeps those visible in at least one frame, in this order.
    """
    streams = dict(_SPLITS)
    if split not in streams:
        raise ValueError(f"split must be one of {sorted(streams)}, got {split!r}")
    max_objects = _resolve(difficulty, max_objects)
    length = resolve_length(difficulty, length)
    rng = _video_rng(seed, streams[split], index)
    objects = _sample_scene(rng, height, width, length, max_objects, difficulty)
    frames, amodal, visible = _render(rng, height, width, length, objects,
                                      _PROFILES[difficulty]["noise"])
    return {
        "frames": frames,
        "objects": [
            {"category_id": o["category_id"], "depth": float(o["depth"]),
             "amodal": amodal[i], "visible": visible[i]}
            for i, o in enumerate(objects)
        ],
    }


# --------------------------------------------------------------------------------------------
# Dataset writing
# --------------------------------------------------------------------------------------------
def _encode_track(visible: np.ndarray):
    """Per-frame (RLE | None, area | None, bbox | None) of a (L, H, W) bool track."""
    L = visible.shape[0]
    rles = mask_util.encode(np.asfortranarray(visible.transpose(1, 2, 0).astype(np.uint8)))
    areas = visible.reshape(L, -1).sum(1)
    rows_any = visible.any(2)  # (L, H)
    cols_any = visible.any(1)  # (L, W)
    segs, ars, boxes = [], [], []
    for t in range(L):
        if areas[t] == 0:
            segs.append(None)
            ars.append(None)
            boxes.append(None)
            continue
        ys = np.flatnonzero(rows_any[t])
        xs = np.flatnonzero(cols_any[t])
        rle = rles[t]
        size = [int(s) for s in rle["size"]]
        segs.append({"size": size, "counts": rle["counts"].decode("ascii")})
        ars.append(float(areas[t]))
        boxes.append([float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1),
                      float(ys[-1] - ys[0] + 1)])
    return segs, ars, boxes


def _write_split(root, split, stream, num_videos, params, jpeg_quality) -> None:
    H, W, L = params["height"], params["width"], params["length"]
    videos, annotations, long_gaps = [], [], 0
    img_root = os.path.join(root, split, "JPEGImages")
    for idx in range(num_videos):
        rng = _video_rng(params["seed"], stream, idx)
        objects = _sample_scene(rng, H, W, L, params["max_objects"], params["difficulty"])
        noise = _PROFILES[params["difficulty"]]["noise"]
        frames, _, visible = _render(rng, H, W, L, objects, noise)
        name = f"{split}_{idx:05d}"
        os.makedirs(os.path.join(img_root, name))
        file_names = []
        for t in range(L):
            rel = f"{name}/{t:05d}.jpg"
            ok = cv2.imwrite(os.path.join(img_root, rel), frames[t][:, :, ::-1],
                             [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            if not ok:
                raise OSError(f"cv2.imwrite failed for {os.path.join(img_root, rel)}")
            file_names.append(rel)
        vid = idx + 1
        videos.append({"id": vid, "width": W, "height": H, "length": L, "file_names": file_names})
        for i, o in enumerate(objects):
            if not visible[i].any():
                continue
            segs, areas, boxes = _encode_track(visible[i])
            long_gaps += count_long_gaps(visible[i].reshape(L, -1).any(1))
            annotations.append({
                "id": len(annotations) + 1, "video_id": vid, "category_id": o["category_id"],
                "iscrowd": 0, "segmentations": segs, "areas": areas, "bboxes": boxes,
            })
    data = {
        "info": {
            "description": "maskprop-d2 synthetic YouTube-VIS dataset (synthetic, not real video)",
            "version": _DATASET_VERSION,
            "generator": _GENERATOR,  # the marker that lets --overwrite replace it
            "params": dict(params, split=split),
            # annotated objects' absences of >= LONG_GAP frames between two visible frames
            "long_gaps": long_gaps,
            "long_gap_min_frames": LONG_GAP,
        },
        "videos": videos,
        "annotations": annotations,
        "categories": [dict(c) for c in SYNTHETIC_CATEGORIES],
    }
    with open(os.path.join(root, f"{split}.json"), "w") as f:
        json.dump(data, f)


def _is_complete(root: str) -> bool:
    return all(os.path.isfile(os.path.join(root, f"{s}.json")) for s, _ in _SPLITS)


def _param_differences(root: str, wanted: Dict) -> str:
    """"key: found -> wanted" for every generator parameter in which the dataset at ``root``
    (its ``valid.json`` info) differs from ``wanted``; "" if none (or nothing recorded)."""
    try:
        with open(os.path.join(root, "valid.json")) as f:
            found = json.load(f).get("info", {}).get("params", {})
    except (OSError, ValueError):
        return ""
    return ", ".join(f"{k}: {found[k]} -> {v}" for k, v in wanted.items()
                     if k in found and found[k] != v)


# What a dataset of this generator holds at its top level (nothing else may be there).
_OWN_ENTRIES = frozenset(f"{s}.json" for s, _ in _SPLITS) | frozenset(s for s, _ in _SPLITS)


def _describe(path: str) -> str:
    """A short account of what is at ``path`` (for errors that must say what is there)."""
    if os.path.islink(path):
        return f"a symbolic link to {os.readlink(path)}"
    if not os.path.isdir(path):
        return f"a file ({os.path.getsize(path)} bytes)"
    names = sorted(os.listdir(path))
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
    return f"a folder holding {shown}" if names else "an empty folder"


def _foreign_content(root: str) -> str:
    """"" if ``root`` is a folder this generator wrote (every top-level entry is one of its own,
    each JSON present carries its ``info.generator`` marker, each split folder holds only
    ``JPEGImages``); otherwise what is there that it did not write."""
    if os.path.islink(root) or not os.path.isdir(root):
        return _describe(root)
    names = set(os.listdir(root))
    other = sorted(names - _OWN_ENTRIES)
    if other:
        return (f"a folder holding files this generator did not write ({', '.join(other[:5])}"
                f"{', ...' if len(other) > 5 else ''})")
    jsons = [n for n in sorted(names) if n.endswith(".json")]
    if not jsons:
        return _describe(root) + " but no train.json/valid.json of this generator"
    for name in jsons:
        f = os.path.join(root, name)
        try:
            with open(f) as fh:
                info = json.load(fh).get("info")
        except (OSError, ValueError, AttributeError, RecursionError):
            info = None
        if not isinstance(info, dict) or info.get("generator") != _GENERATOR:
            return f"a folder whose {name} was not written by this generator (no info.generator)"
    for split, _ in _SPLITS:
        sub = os.path.join(root, split)
        if os.path.lexists(sub):
            if os.path.islink(sub) or not os.path.isdir(sub):
                return f"a folder whose {split} is not a folder"
            extra = sorted(set(os.listdir(sub)) - {"JPEGImages"})
            if extra:
                return f"a folder whose {split}/ holds {', '.join(extra[:5])} (not written here)"
    return ""


def _check_target(out_dir: str, overwrite: bool) -> None:
    """Raise ``FileExistsError`` unless writing ``out_dir`` destroys nothing the user owns:
    it is absent, an empty folder, or (with ``overwrite``) a dataset this generator wrote."""
    if not os.path.lexists(out_dir):
        return
    if os.path.isdir(out_dir) and not os.path.islink(out_dir) and not os.listdir(out_dir):
        return
    foreign = _foreign_content(out_dir)
    if foreign:
        raise FileExistsError(f"{out_dir} is {foreign}; not a dataset of this generator, so it "
                              "is left alone (even with --overwrite): choose another --out")
    if not overwrite:
        raise FileExistsError(f"{out_dir} already holds a synthetic dataset; pass "
                              "overwrite=True (--overwrite) to regenerate it")


class _Blocked:
    """Delay SIGINT/SIGTERM (POSIX) while a folder swap runs, so that it completes or never
    starts; a signal that came meanwhile is delivered on exit."""

    _SIGNALS = {getattr(signal, n) for n in ("SIGINT", "SIGTERM") if hasattr(signal, n)}

    def __enter__(self):
        self._old = (signal.pthread_sigmask(signal.SIG_BLOCK, self._SIGNALS)
                     if hasattr(signal, "pthread_sigmask") else None)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


def generate_synthetic_dataset(
    out_dir: str,
    num_train: int = 300,
    num_val: int = 60,
    length: Optional[int] = None,
    height: int = 96,
    width: int = 128,
    max_objects: Optional[int] = None,
    seed: int = 0,
    difficulty: str = "standard",
    overwrite: bool = False,
    jpeg_quality: int = 90,
) -> str:
    """Write the dataset to ``out_dir`` atomically and return ``out_dir``.

    ``max_objects=None`` means 4 (standard) / 6 (hard). Raises ``FileExistsError`` if ``out_dir``
    holds a dataset unless ``overwrite``, and always when it holds anything else (a file, a
    folder with other content): only what this generator wrote (its JSONs' ``info.generator``)
    is ever replaced. On any exception (``KeyboardInterrupt`` included) nothing is left behind.
    """
    max_objects = _resolve(difficulty, max_objects)
    length = resolve_length(difficulty, length)
    for key, val, low in (("num_train", num_train, 1), ("num_val", num_val, 1),
                          ("length", length, 1), ("height", height, 16), ("width", width, 16)):
        if int(val) < low:
            raise ValueError(f"{key} must be >= {low}, got {val}")
    out_dir = os.path.abspath(os.path.expanduser(out_dir))
    _check_target(out_dir, overwrite)
    params = {"num_train": int(num_train), "num_val": int(num_val), "length": int(length),
              "height": int(height), "width": int(width), "max_objects": max_objects,
              "seed": int(seed), "difficulty": difficulty}
    parent, base = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        os.chmod(tmp, 0o755)
        for (split, stream), num in zip(_SPLITS, (num_train, num_val), strict=True):
            _write_split(tmp, split, stream, int(num), params, jpeg_quality)
        with _Blocked():
            if os.path.lexists(out_dir) and os.listdir(out_dir):
                _check_target(out_dir, overwrite)  # again: it may have changed meanwhile
                trash = os.path.join(parent, f".{base}.old-{uuid.uuid4().hex[:8]}")
                os.rename(out_dir, trash)
                os.rename(tmp, out_dir)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                try:
                    os.rename(tmp, out_dir)  # atomic; replaces an empty directory only
                except OSError as e:
                    raise FileExistsError(f"{out_dir} appeared while generating ({e})") from e
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def ensure_synthetic_dataset(root: Optional[str] = None, **kwargs) -> str:
    """Generate the dataset at ``root`` (default ``DEFAULT_SYNTHETIC_ROOT()``) only if
    ``root/train.json`` or ``root/valid.json`` is missing; return ``root``.

    Safe when several processes call it at once: each builds in its own temp dir, one rename
    wins, the others find the complete dataset and return.
    """
    root = DEFAULT_SYNTHETIC_ROOT() if root is None else os.path.expanduser(root)
    if _is_complete(root):
        return root
    logger.info(f"Generating the synthetic YouTube-VIS dataset at {root} ...")
    try:
        generate_synthetic_dataset(root, **kwargs)
    except FileExistsError:
        if not _is_complete(root):
            raise
    return root


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m maskprop_d2.data.synthetic",
        description="Write a deterministic synthetic YouTube-VIS dataset (train.json/valid.json "
        "+ JPEG frames).",
    )
    p.add_argument("--out", default=None,
                   help="output folder (default: $MASKPROP_SYNTHETIC_ROOT or "
                   "$DETECTRON2_DATASETS/synthetic_ytvis)")
    p.add_argument("--num-train", type=int, default=300, help="training videos (300)")
    p.add_argument("--num-val", type=int, default=60, help="validation videos (60)")
    p.add_argument("--length", type=int, default=None,
                   help="frames per video (24; 64 for --difficulty occlusion)")
    p.add_argument("--height", type=int, default=96, help="frame height (96)")
    p.add_argument("--width", type=int, default=128, help="frame width (128)")
    p.add_argument("--max-objects", type=int, default=None,
                   help="max objects per video (4 standard, 6 hard)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", choices=DIFFICULTIES, default="standard")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset this generator wrote at --out (never anything else)")
    args = p.parse_args(argv)
    out = DEFAULT_SYNTHETIC_ROOT() if args.out is None else args.out
    if os.path.lexists(out) and _is_complete(out) and not _foreign_content(out) \
            and not args.overwrite:
        wanted = {"num_train": args.num_train, "num_val": args.num_val,
                  "length": resolve_length(args.difficulty, args.length),
                  "height": args.height, "width": args.width, "seed": args.seed,
                  "difficulty": args.difficulty,
                  "max_objects": _resolve(args.difficulty, args.max_objects)}
        differ = _param_differences(out, wanted)
        if differ:
            print(f"error: {out} holds a dataset generated with other parameters ({differ}); "
                  "use --overwrite to regenerate it", file=sys.stderr)
            return 2
        print(f"{out}: a dataset is already there; nothing done (use --overwrite to regenerate)")
        return 0
    t0 = time.perf_counter()
    # SIGTERM (e.g. `kill`, a scheduler's stop) unwinds like Ctrl-C, so the temp folder goes too
    try:
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: signals stay as they are
        old_term = None
    try:
        generate_synthetic_dataset(
            out, num_train=args.num_train, num_val=args.num_val, length=args.length,
            height=args.height, width=args.width, max_objects=args.max_objects, seed=args.seed,
            difficulty=args.difficulty, overwrite=args.overwrite,
        )
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: nothing written to {out}", file=sys.stderr)
        return 130
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    print(f"wrote {args.num_train} train + {args.num_val} valid videos "
          f"({resolve_length(args.difficulty, args.length)} frames, {args.width}x{args.height}, "
          f"{args.difficulty}) to {out} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    sys.exit(main())
