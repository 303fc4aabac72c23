#!/usr/bin/env python
"""Where a model's YouTube-VIS AP goes: an error breakdown of a results file against its GT.

Predictions that carry the same masks (one video instance reported under several categories,
``CATEGORIES_PER_INSTANCE > 1``) are merged into one instance whose class is its best-scoring
entry. Every GT track is then put in exactly one bucket by its best-overlapping prediction
(video IoU over all frames, any class):

* ``correct``: a prediction of the right class with video IoU >= 0.5;
* ``class confusion``: video IoU >= 0.5 but the class is wrong (the confusion matrix counts them);
* ``fragmented``: best video IoU < 0.5, but in at least half of the frames where the track is
  present some prediction covers it with frame IoU >= 0.5 (found, but split over several IDs);
* ``localisation``: best video IoU in [0.1, 0.5), not fragmented (mask or temporal extent off);
* ``missed``: best video IoU < 0.1.

Buckets are also split by object size (median visible area of the track over the frames where it
is present, as sqrt(area) in pixels). ID switches: in every frame where a GT track is present, the
prediction with the highest frame IoU (>= 0.5) covers it; a change of that prediction between two
covered frames is one switch. False positives: predicted instances (top class) whose best video
IoU with any GT track is < 0.1.

Usage::

    python tools/analyze_errors.py GT.json RESULTS.json [--out report.md]
"""

import argparse
import json
import os
import sys
from collections import Counter, defaultdict

import numpy as np
import pycocotools.mask as mask_util

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import write_report  # noqa: E402

SIZE_BINS = [(0, 12, "small (<12 px)"), (12, 20, "medium (12-20 px)"), (20, 1e9, "large (>=20 px)")]


def _rles(segs, h, w):
    out = []
    for s in segs:
        if s is None:
            out.append(None)
        elif isinstance(s["counts"], list):
            out.append(mask_util.frPyObjects(s, h, w))
        else:
            out.append(s)
    return out


def _frame_ious(a, b):
    """(F,) IoU per frame of two RLE lists (None = empty); NaN where both are empty."""
    out = np.full(len(a), np.nan)
    for f, (x, y) in enumerate(zip(a, b, strict=True)):
        ax = 0 if x is None else mask_util.area(x)
        by = 0 if y is None else mask_util.area(y)
        if ax == 0 and by == 0:
            continue
        if ax == 0 or by == 0:
            out[f] = 0.0
            continue
        out[f] = mask_util.iou([x], [y], [0])[0, 0]
    return out


def _video_iou(a, b):
    inter = union = 0.0
    for x, y in zip(a, b, strict=True):
        ax = 0 if x is None else float(mask_util.area(x))
        by = 0 if y is None else float(mask_util.area(y))
        if ax == 0 and by == 0:
            continue
        i = 0.0
        if ax > 0 and by > 0:
            i = float(mask_util.area(mask_util.merge([x, y], intersect=True)))
        inter += i
        union += ax + by - i
    return inter / union if union > 0 else 0.0


def analyze(gt, results):
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    videos = {v["id"]: v for v in gt["videos"]}
    gts = defaultdict(list)
    for a in gt["annotations"]:
        if a.get("iscrowd", 0):
            continue
        v = videos[a["video_id"]]
        gts[a["video_id"]].append(
            (a["category_id"], _rles(a["segmentations"], v["height"], v["width"]))
        )
    preds = defaultdict(dict)  # video -> key -> [best score, class, rles]
    for r in results:
        v = videos[r["video_id"]]
        key = json.dumps(r["segmentations"], sort_keys=True)
        cur = preds[r["video_id"]].get(key)
        if cur is None or r["score"] > cur[0]:
            rl = cur[2] if cur else _rles(r["segmentations"], v["height"], v["width"])
            preds[r["video_id"]][key] = [r["score"], r["category_id"], rl]
    buckets = Counter()
    by_size = defaultdict(Counter)
    confusion = defaultdict(Counter)
    per_class = defaultdict(Counter)
    switches = 0
    covered_tracks = 0
    fp = 0
    n_pred = 0
    for vid, tracks in gts.items():
        plist = list(preds.get(vid, {}).values())
        n_pred += len(plist)
        best_for_pred = np.zeros(len(plist))
        for cat, g in tracks:
            areas = [mask_util.area(x) for x in g if x is not None and mask_util.area(x) > 0]
            side = float(np.sqrt(np.median(areas))) if areas else 0.0
            size = next(name for lo, hi, name in SIZE_BINS if lo <= side < hi)
            vious = np.array([_video_iou(p[2], g) for p in plist]) if plist else np.zeros(0)
            if len(plist):
                best_for_pred = np.maximum(best_for_pred, vious)
            same = [i for i, p in enumerate(plist) if p[1] == cat]
            best_same = max((vious[i] for i in same), default=0.0)
            best_any = float(vious.max()) if len(vious) else 0.0
            # frames where some prediction covers the track (frame IoU >= 0.5), and by which
            owner = []
            present = np.array([x is not None and mask_util.area(x) > 0 for x in g])
            if plist:
                fi = np.stack([_frame_ious(p[2], g) for p in plist])  # (P, F)
                for f in np.flatnonzero(present):
                    col = np.nan_to_num(fi[:, f])
                    j = int(col.argmax())
                    if col[j] >= 0.5:
                        owner.append(j)
                switches += sum(1 for a, b2 in zip(owner, owner[1:], strict=False) if a != b2)
                covered_tracks += bool(owner)
            if best_same >= 0.5:
                b = "correct"
            elif best_any >= 0.5:
                b = "class confusion"
                confusion[cats[cat]][cats[plist[int(vious.argmax())][1]]] += 1
            elif present.any() and len(owner) >= 0.5 * present.sum():
                b = "fragmented"
            elif best_any >= 0.1:
                b = "localisation"
            else:
                b = "missed"
            buckets[b] += 1
            by_size[size][b] += 1
            per_class[cats[cat]][b] += 1
        fp += int((best_for_pred < 0.1).sum())
    return dict(
        buckets=buckets,
        by_size=by_size,
        confusion=confusion,
        per_class=per_class,
        switches=switches,
        covered_tracks=covered_tracks,
        fp=fp,
        n_pred=n_pred,
        n_gt=sum(len(t) for t in gts.values()),
        cats=cats,
    )


def render(res, gt_path, res_path):
    names = ["correct", "class confusion", "fragmented", "localisation", "missed"]
    lines = [
        "Error breakdown: `python tools/analyze_errors.py {} {}`".format(gt_path, res_path),
        "",
        "{} GT tracks, {} predicted instances (merged over categories), {} false positives "
        "(best video IoU < 0.1), {} ID switches over {} tracks covered at least once.".format(
            res["n_gt"], res["n_pred"], res["fp"], res["switches"], res["covered_tracks"]
        ),
        "",
        "| GT tracks | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| all | " + " | ".join(str(res["buckets"][n]) for n in names) + " |",
    ]
    for _, _, size in SIZE_BINS:
        lines.append(
            "| {} | ".format(size) + " | ".join(str(res["by_size"][size][n]) for n in names) + " |"
        )
    for c in sorted(res["per_class"]):
        lines.append(
            "| class {} | ".format(c)
            + " | ".join(str(res["per_class"][c][n]) for n in names)
            + " |"
        )
    if res["confusion"]:
        lines += [
            "",
            "Class confusions (GT class → predicted class of the best-overlapping instance):",
            "",
        ]
        for g, row in sorted(res["confusion"].items()):
            lines.append(
                "* {}: {}".format(g, ", ".join("{} {}".format(k, v) for k, v in row.most_common()))
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gt")
    ap.add_argument("results")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    with open(args.gt) as f:
        gt = json.load(f)
    with open(args.results) as f:
        results = json.load(f)
    text = render(analyze(gt, results), args.gt, args.results)
    print(text)
    if args.out:
        write_report(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
