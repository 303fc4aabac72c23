"""tools/bootstrap_compare.py: paired bootstrap over videos of a metric difference."""

import numpy as np
import pycocotools.mask as mask_util

from tests.helpers import load_script

boot = load_script("bootstrap_compare", "tools", "bootstrap_compare.py")

H, W, L = 8, 10, 3


def _rle(m):
    r = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
    r["counts"] = r["counts"].decode()
    return r


def _split(n_videos=6):
    gt = {"videos": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    masks = {}
    for v in range(1, n_videos + 1):
        gt["videos"].append({"id": v, "height": H, "width": W, "length": L,
                             "file_names": [f"{v}/{k}.jpg" for k in range(L)]})  # fmt: skip
        m = np.zeros((H, W), bool)
        m[1:5, v % 5 : v % 5 + 4] = True
        masks[v] = m
        gt["annotations"].append({"id": v, "video_id": v, "category_id": 1, "iscrowd": 0,
                                  "segmentations": [_rle(m)] * L, "areas": [int(m.sum())] * L,
                                  "bboxes": [None] * L, "height": H, "width": W})  # fmt: skip
    return gt, masks


def _results(masks, good):
    """One result per video: the GT mask where ``good(v)``, else a wrong mask."""
    out = []
    for v, m in masks.items():
        seg = m if good(v) else np.roll(m, 4, axis=0)
        out.append({"video_id": v, "category_id": 1, "score": 0.9,
                    "segmentations": [_rle(seg)] * L})  # fmt: skip
    return out


def test_identical_results_give_a_zero_interval():
    gt, masks = _split()
    res = _results(masks, lambda v: v % 2 == 0)
    d, lo, hi = boot.compare(gt, res, res, samples=20)["AP"]
    assert d == lo == hi == 0.0


def test_better_results_give_a_positive_difference_and_an_interval_around_it():
    gt, masks = _split()
    a = _results(masks, lambda v: v <= 2)  # 2 of 6 videos right
    b = _results(masks, lambda v: True)  # all right
    d, lo, hi = boot.compare(gt, a, b, samples=30, seed=1)["AP"]
    assert d > 0
    assert lo <= d <= hi and lo > 0
    # resampling really varies the videos: the interval has width
    assert hi > lo
