"""Score or validate a YouTube-VIS results file.

    python -m maskprop_d2.evaluation GT_JSON RESULTS_JSON [--json OUT] [--per-category]
    python -m maskprop_d2.evaluation --check GT_JSON RESULTS_JSON

RESULTS_JSON may also be a results.zip with results.json at its root. Exit status: 0 on success,
1 when the files are invalid (the messages name the entry and video at fault).
"""

import argparse
import json
import math
import os
import sys

from .results_io import check_results, load_json, load_results
from .ytvis_eval import evaluate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maskprop_d2.evaluation",
        description="YouTube-VIS metrics (AP/AR over video IoU) of a results.json, or --check it.",
    )
    parser.add_argument("gt_json", help="ground truth in YouTube-VIS format")
    parser.add_argument("results_json", help="results.json (or results.zip) in the official format")
    parser.add_argument(
        "--json", metavar="OUT", help="write the 12 stats (fractions, -1 = undefined)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only validate the results, no scoring"
    )
    parser.add_argument("--per-category", action="store_true", help="also print AP per category")
    args = parser.parse_args(argv)

    try:
        gt = load_json(args.gt_json)
        results = load_results(args.results_json)
        if not isinstance(gt, dict) or "videos" not in gt or "categories" not in gt:
            raise ValueError(
                "{} is not a YouTube-VIS GT file (no videos/categories)".format(args.gt_json)
            )
        if args.check:
            errors = check_results(gt, results)
            if errors:
                for e in errors:
                    print("error: " + e, file=sys.stderr)
                print(
                    "{}: {} problem(s) found".format(args.results_json, len(errors)),
                    file=sys.stderr,
                )
                return 1
            print(
                "{}: OK ({} entries, {} videos in the GT)".format(
                    args.results_json, len(results), len(gt["videos"])
                )
            )
            return 0
        res = evaluate(gt, results)
    except ValueError as e:
        print("error: {}".format(e), file=sys.stderr)
        return 1

    print(res.summary())
    if args.per_category:
        for cid in res.category_ids:
            ap = res.per_category_ap[cid]
            print(
                "AP-{}: {}".format(
                    res.category_names.get(cid, cid),
                    "nan" if math.isnan(ap) else "{:0.3f}".format(ap),
                )
            )
    if args.json:
        out_dir = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(out_dir, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(res.as_dict(), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
