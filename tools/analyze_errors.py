#!/usr/bin/env python
"""Where a model's YouTube-VIS AP goes: an error breakdown of a results file against its GT.

Predictions with the same masks (one instance under several categories) are merged, the best
score's class kept. Each GT track goes in one bucket by its best-overlapping prediction (video
IoU, any class): ``correct`` (right class, IoU >= 0.5); ``class confusion`` (IoU >= 0.5, wrong
class; counted in the confusion matrix); ``fragmented`` (IoU < 0.5, but in at least half of its
frames some prediction has frame IoU >= 0.5: split over several IDs); ``localisation`` (IoU in
[0.1, 0.5)); ``missed`` (< 0.1). Also by size (sqrt of the median visible area) and by class.
The last column: the median over a row's GT tracks of their best video IoU (any class), which
tells masks that miss the shape (a low median with few missed tracks) from missed objects.
ID switches: changes of the best-covering prediction (frame IoU >= 0.5) between covered frames.
False positives: predictions whose best video IoU with any GT track is < 0.1.

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
from bench_common import markdown_table, write_report  # noqa: E402

from maskprop_d2.evaluation.identity import best_category_entries  # noqa: E402

SIZE_BINS = [(0, 12, "small (<12 px)"), (12, 20, "medium (12-20 px)"), (20, 1e9, "large (>=20 px)")]


def _rles(segs, h, w):
    """RLEs of a track's segmentations (uncompressed counts converted), None where absent."""
    return [mask_util.frPyObjects(s, h, w) if s and isinstance(s["counts"], list) else s
            for s in segs]  # fmt: skip


def _overlaps(a, b):
    """Per frame of two RLE lists (None = empty): (intersection, union) areas."""
    out = []
    for x, y in zip(a, b, strict=True):
        ax, by = (0.0 if m is None else float(mask_util.area(m)) for m in (x, y))
        i = float(mask_util.area(mask_util.merge([x, y], intersect=True))) if ax and by else 0.0
        out.append((i, ax + by - i))
    return np.array(out).reshape(-1, 2)


def analyze(gt, results):
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    videos = {v["id"]: v for v in gt["videos"]}
    gts = defaultdict(list)
    for a in gt["annotations"]:
        if a.get("iscrowd", 0):
            continue
        v = videos[a["video_id"]]
        rles = _rles(a["segmentations"], v["height"], v["width"])
        gts[a["video_id"]].append((a["category_id"], rles))
    preds = defaultdict(list)  # video -> [score, class, rles] of each predicted track
    for r in best_category_entries(results):
        v = videos[r["video_id"]]
        rles = _rles(r["segmentations"], v["height"], v["width"])
        preds[r["video_id"]].append([r["score"], r["category_id"], rles])
    buckets, by_size, confusion, per_class = Counter(), *(defaultdict(Counter) for _ in range(3))
    ious = defaultdict(list)  # row name -> the best video IoU of each of its GT tracks
    switches = covered_tracks = fp = n_pred = 0
    for vid, tracks in gts.items():
        plist = preds.get(vid, [])
        n_pred += len(plist)
        best_for_pred = np.zeros(len(plist))
        for cat, g in tracks:
            areas = [mask_util.area(x) for x in g if x is not None and mask_util.area(x) > 0]
            side = float(np.sqrt(np.median(areas))) if areas else 0.0
            size = next(name for lo, hi, name in SIZE_BINS if lo <= side < hi)
            ov = np.array([_overlaps(p[2], g) for p in plist]).reshape(len(plist), len(g), 2)
            inter, union = ov[..., 0], ov[..., 1]  # (P, F)
            vious = inter.sum(1) / np.maximum(union.sum(1), 1e-12)
            best_for_pred = np.maximum(best_for_pred, vious)
            same = [v for v, p in zip(vious, plist, strict=True) if p[1] == cat]
            best_same = max(same, default=0.0)
            best_any = float(vious.max()) if len(vious) else 0.0
            # frames where some prediction covers the track (frame IoU >= 0.5), and by which
            present = np.array([x is not None and mask_util.area(x) > 0 for x in g])
            fi = inter[:, present] / np.maximum(union[:, present], 1e-12)
            best = zip(fi.argmax(0), fi.max(0), strict=True) if plist else []
            owner = [int(j) for j, v in best if v >= 0.5]
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
            for row in ("all", size, "class " + cats[cat]):
                ious[row].append(best_any)
        fp += int((best_for_pred < 0.1).sum())
    return dict(buckets=buckets, by_size=by_size, confusion=confusion, per_class=per_class,
                median_iou={k: float(np.median(v)) for k, v in ious.items()},
                switches=switches, covered_tracks=covered_tracks, fp=fp, n_pred=n_pred,
                n_gt=sum(len(t) for t in gts.values()), cats=cats)  # fmt: skip


def render(res, gt_path, res_path):
    names = ["correct", "class confusion", "fragmented", "localisation", "missed"]
    rows = [["all"] + [res["buckets"][n] for n in names]]
    rows += [[size] + [res["by_size"][size][n] for n in names] for _, _, size in SIZE_BINS]
    per_class = res["per_class"]
    rows += [["class " + c] + [per_class[c][n] for n in names] for c in sorted(per_class)]
    med = res["median_iou"]
    rows = [r + ["{:.2f}".format(med[r[0]]) if r[0] in med else "-"] for r in rows]
    lines = [
        "Error breakdown: `python tools/analyze_errors.py {} {}`".format(gt_path, res_path), "",
        "{} GT tracks, {} predicted instances (merged over categories), {} false positives "
        "(best video IoU < 0.1), {} ID switches over {} tracks covered at least once.".format(
            res["n_gt"], res["n_pred"], res["fp"], res["switches"], res["covered_tracks"]), "",
    ] + markdown_table(["GT tracks"] + names + ["median video IoU"], rows)  # fmt: skip
    if res["confusion"]:
        lines += ["", "Class confusions (GT class → predicted class of the best-overlapping "
                  "instance):", ""]  # fmt: skip
        for g, row in sorted(res["confusion"].items()):
            lines.append("* {}: {}".format(g, ", ".join("%s %d" % kv for kv in row.most_common())))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gt")
    ap.add_argument("results")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    gt, results = (json.load(open(path)) for path in (args.gt, args.results))
    text = render(analyze(gt, results), args.gt, args.results)
    print(text)
    if args.out:
        write_report(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
