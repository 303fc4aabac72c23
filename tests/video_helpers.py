"""Shared by the video inference tests: a tiny random-weight model that detects, a video, and a
counter of a module's forward passes (the trackers' backbone passes); a short video file."""

import contextlib

import cv2
import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from maskprop_d2 import add_maskprop_config
from tests.helpers import TINY_CONFIG


def tiny_video_model(*opts):
    """(cfg, model) of the tiny config in eval mode, thresholds at 0 so every frame has
    detections (at most 4), soft masks cut at 0.2, one category per ID; ``opts`` are extra
    KEY VALUE overrides."""
    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(TINY_CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.MASKPROP.INFERENCE.SCORE_THRESH = 0.0
    cfg.MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME = 4
    cfg.MODEL.MASKPROP.INFERENCE.MASK_THRESH = 0.2
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.MASKPROP.INFERENCE.CATEGORIES_PER_INSTANCE = 1  # one entry per video ID
    cfg.merge_from_list(list(opts))
    torch.manual_seed(0)
    model = build_model(cfg)
    model.eval()
    return cfg, model


@contextlib.contextmanager
def forward_calls(module):
    """``with forward_calls(model.backbone) as calls:`` ... ``len(calls)``: the module's forward
    passes inside the block (a forward hook, removed on exit)."""
    calls = []
    handle = module.register_forward_hook(lambda *args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def drifting_video(n, h=64, w=96, seed=0):
    """n frames of one random texture drifting right by 2 px a frame, output size 2x."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 255, (3, h, w), generator=g, dtype=torch.uint8)
    return [
        {"image": torch.roll(base, shifts=2 * i, dims=2), "height": 2 * h, "width": 2 * w}
        for i in range(n)
    ]


def write_video(path, n=14, w=120, h=80, fps=7.0, fourcc="mp4v"):
    """A short video file: a disc moving right over a fixed random background."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened()
    rng = np.random.RandomState(0)
    bg = rng.randint(0, 255, (h, w, 3)).astype(np.uint8)
    for i in range(n):
        f = bg.copy()
        cv2.circle(f, (20 + 5 * i, 40), 12, (0, 200, 255), -1)
        vw.write(f)
    vw.release()
