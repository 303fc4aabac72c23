"""tools/analyze_errors.py: every GT track in exactly one bucket, confusions and ID switches."""


import numpy as np
import pycocotools.mask as mask_util

from tests.helpers import load_script

analyze_errors = load_script("analyze_errors", "tools", "analyze_errors.py")

H, W, L = 40, 60, 6


def _rle(y0, x0, s=10):
    m = np.zeros((H, W), np.uint8, order="F")
    m[y0 : y0 + s, x0 : x0 + s] = 1
    r = mask_util.encode(np.asfortranarray(m))
    r["counts"] = r["counts"].decode("ascii")
    return r


def _track(positions):
    return [None if p is None else _rle(*p) for p in positions]


def _gt():
    a = _track([(2, 2)] * L)  # class 1, will be found
    b = _track([(20, 30)] * L)  # class 2, will be found with the wrong class
    c = _track([(2, 40)] * L)  # class 3, missed
    d = _track([(25, 2)] * L)  # class 1, covered by two predictions in turn (one switch)
    anns = [
        {"id": i + 1, "video_id": 1, "category_id": cat, "iscrowd": 0, "segmentations": segs}
        for i, (cat, segs) in enumerate([(1, a), (2, b), (3, c), (1, d)])
    ]
    cats = [{"id": i, "name": n} for i, n in [(1, "disc"), (2, "square"), (3, "star")]]
    return {
        "videos": [{"id": 1, "height": H, "width": W, "length": L}],
        "annotations": anns,
        "categories": cats,
    }


def test_buckets_confusion_and_switches():
    gt = _gt()
    segs = {a["id"]: a["segmentations"] for a in gt["annotations"]}
    first = [s if f < 3 else None for f, s in enumerate(segs[4])]
    second = [s if f >= 3 else None for f, s in enumerate(segs[4])]
    results = [
        {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": segs[1]},
        # the same masks reported under a second class with a lower score: merged, class 1 wins
        {"video_id": 1, "category_id": 3, "score": 0.2, "segmentations": segs[1]},
        {"video_id": 1, "category_id": 3, "score": 0.8, "segmentations": segs[2]},
        {"video_id": 1, "category_id": 1, "score": 0.7, "segmentations": first},
        {"video_id": 1, "category_id": 1, "score": 0.6, "segmentations": second},
        {"video_id": 1, "category_id": 2, "score": 0.5, "segmentations": _track([(30, 45)] * L)},
    ]
    res = analyze_errors.analyze(gt, results)
    assert res["n_gt"] == 4 and res["n_pred"] == 5
    # track a correct; b confused (square -> star); c missed; d: best half-track has vIoU 0.5
    assert res["buckets"] == {"correct": 2, "class confusion": 1, "missed": 1}
    assert dict(res["confusion"]["square"]) == {"star": 1}
    assert res["switches"] == 1
    assert res["fp"] == 1  # the prediction at (30, 45) overlaps no GT
    text = analyze_errors.render(res, "gt.json", "res.json")
    assert "| all | 2 | 1 | 0 | 0 | 1 | 0.75 |" in text
    # best video IoU per track: a 1, b 1 (any class), c 0, d 0.5
    assert res["median_iou"]["class disc"] == 0.75 and res["median_iou"]["class star"] == 0.0
    assert "| class square | 0 | 1 | 0 | 0 | 0 | 1.00 |" in text


def test_track_split_in_three_is_fragmented():
    gt = _gt()
    segs = gt["annotations"][0]["segmentations"]
    results = [
        {
            "video_id": 1,
            "category_id": 1,
            "score": 0.9 - 0.1 * k,
            "segmentations": [s if f // 2 == k else None for f, s in enumerate(segs)],
        }
        for k in range(3)
    ]
    res = analyze_errors.analyze(gt, results)
    assert res["buckets"]["fragmented"] == 1  # each piece has video IoU 1/3, all frames covered
    assert res["switches"] == 2
