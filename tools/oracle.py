"""Oracle check of the video post-processing: ground-truth masks as clip tracks.

Every ground-truth object present in frame t becomes a detection of frame t (score 1, its own
class) whose clip-level track is its ground-truth masks over t-T..t+T (empty where it is absent).
The tracks go through the same :class:`ClipTrackAggregator` as the model's, the results through
the same writer and evaluator. With perfect tracks the ID assignment must recover the ground
truth (AP close to 100); a lower number is a bug in the post-processing, or an object that stays
hidden for more than 2T frames (clips no longer overlap, so it comes back with a new ID).

    python tools/oracle.py datasets/synthetic_ytvis/valid.json --half-length 1 3 6
"""

from typing import Dict, List

import numpy as np
import torch

from maskprop_d2.evaluation.results_io import load_json
from maskprop_d2.evaluation.ytvis_eval import evaluate
from maskprop_d2.inference import collect_video_results
from maskprop_d2.tracking import ClipTrackAggregator, FrameGeometry
from maskprop_d2.utils.rle import decode_segmentation

__all__ = ["oracle_results"]


def oracle_results(gt: Dict, half_length: int, match_thresh: float = 0.3) -> List[dict]:
    """Results (official format) of the ID assignment fed with the ground truth of ``gt``."""
    cats = sorted(c["id"] for c in gt["categories"])
    to_contiguous = {c: i for i, c in enumerate(cats)}
    by_video: Dict[int, list] = {}
    for a in gt.get("annotations", []):
        if not a.get("iscrowd", 0):
            by_video.setdefault(a["video_id"], []).append(a)
    results = []
    for v in gt["videos"]:
        anns = by_video.get(v["id"], [])
        h, w, length = v["height"], v["width"], v["length"]
        if anns:
            per_track = [[decode_segmentation(s, h, w) for s in a["segmentations"]] for a in anns]
            masks = torch.from_numpy(np.array(per_track, dtype=bool))  # (A, L, H, W)
        else:
            masks = torch.zeros((0, length, h, w), dtype=torch.bool)
        classes = torch.tensor([to_contiguous[a["category_id"]] for a in anns], dtype=torch.long)
        agg = ClipTrackAggregator(half_length, match_thresh, 0.5, len(cats))
        for f in range(length):
            agg.set_geometry(f, FrameGeometry((h, w), (h, w), 1))
        for t in range(length):
            frames = range(max(0, t - half_length), min(length, t + half_length + 1))
            present = masks[:, t].flatten(1).any(1)
            tracks = masks[present][:, frames.start : frames.stop].float()
            agg.add_clip(t, frames, tracks, classes[present], torch.ones(int(present.sum())))
        frames_out = (agg.emit(f) for f in range(length))
        entries = collect_video_results(frames_out, agg.votes.ranked_all, length)
        for e in entries:
            e["video_id"] = v["id"]
            e["category_id"] = cats[e["category_id"]]
            results.append(e)
    return results


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gt_json", help="YouTube-VIS JSON with annotations")
    ap.add_argument("--half-length", type=int, nargs="+", default=[3, 6], help="T values")
    ap.add_argument("--match-thresh", type=float, default=0.3)
    args = ap.parse_args(argv)
    gt = load_json(args.gt_json)
    print("| T | AP | AP50 | AP75 | AR1 | AR10 | video instances | GT tracks |")
    print("|---|---|---|---|---|---|---|---|")
    for t in args.half_length:
        results = oracle_results(gt, t, args.match_thresh)
        s = evaluate(gt, results).stats * 100
        print(
            "| {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {} | {} |".format(
                t, s[0], s[1], s[2], s[6], s[7], len(results), len(gt.get("annotations", []))
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
