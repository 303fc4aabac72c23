#!/usr/bin/env python
"""Paired bootstrap over videos of the difference between two trackers' results on one split.

Each resample draws the split's videos with replacement (the same draw for both trackers), scores
both results files on it and records B − A. Reported: the difference on the whole split and the
2.5 / 97.5 percentiles of the resampled differences (a 95 % interval). AP by the project's
YouTube-VIS evaluator; HOTA (with ``--hota``) by TrackEval, slower (~seconds a resample).

    python tools/bootstrap_compare.py GT.json A/results.json B/results.json --samples 200 [--hota]
"""

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resample(gt, by_video, results_by_video, picks):
    """GT and results restricted to the videos ``picks`` (indices into gt["videos"]; repeats
    become distinct videos with new ids)."""
    videos, anns, res = [], [], [[] for _ in results_by_video]
    for k, i in enumerate(picks):
        v = dict(gt["videos"][i])
        old, v["id"] = v["id"], k + 1
        videos.append(v)
        for a in by_video[old]:
            anns.append(dict(a, id=len(anns) + 1, video_id=k + 1))
        for j, rv in enumerate(results_by_video):
            res[j] += [dict(r, video_id=k + 1) for r in rv[old]]
    sub = {"videos": videos, "annotations": anns, "categories": gt["categories"]}
    return sub, res


def metrics(gt, results, hota, best_category=True):
    from maskprop_d2.evaluation.identity import identity_metrics
    from maskprop_d2.evaluation.ytvis_eval import evaluate

    out = {"AP": 100 * evaluate(gt, results).as_dict()["AP"]}
    if hota:
        out["HOTA"] = 100 * identity_metrics(gt, results, best_category=best_category)["HOTA"]
    return out


def compare(gt, res_a, res_b, samples=200, hota=False, seed=0, best_category=True):
    """{metric: (B − A on the split, low, high)} with the 95 % bootstrap interval."""
    by_video = defaultdict(list)
    for a in gt["annotations"]:
        by_video[a["video_id"]].append(a)
    per = []
    for res in (res_a, res_b):
        d = defaultdict(list)
        for r in res:
            d[r["video_id"]].append(r)
        per.append(d)
    full = [metrics(gt, r, hota, best_category) for r in (res_a, res_b)]
    rng = np.random.default_rng(seed)
    n = len(gt["videos"])
    diffs = defaultdict(list)
    for _ in range(samples):
        sub, (ra, rb) = resample(gt, by_video, per, rng.integers(0, n, n))
        ma, mb = metrics(sub, ra, hota, best_category), metrics(sub, rb, hota, best_category)
        for k in ma:
            diffs[k].append(mb[k] - ma[k])
    return {k: (full[1][k] - full[0][k], *np.percentile(diffs[k], [2.5, 97.5])) for k in diffs}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("gt")
    p.add_argument("results_a")
    p.add_argument("results_b")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--hota", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with open(a.gt) as f:
        gt = json.load(f)
    res = []
    for path in (a.results_a, a.results_b):
        with open(path) as f:
            res.append(json.load(f))
    for k, (d, lo, hi) in compare(gt, *res, a.samples, a.hota, a.seed).items():
        print("{}: B - A = {:+.1f} (95 % interval {:+.1f} .. {:+.1f})".format(k, d, lo, hi))


if __name__ == "__main__":
    main()
