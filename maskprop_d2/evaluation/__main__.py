"""Score or validate a YouTube-VIS results file.

    python -m maskprop_d2.evaluation GT_JSON RESULTS_JSON [--json OUT] [--per-category]
                                     [--identity [--identity-max-gb GB] [--identity-all-entries]]
    python -m maskprop_d2.evaluation --check GT_JSON RESULTS_JSON

RESULTS_JSON may also be a results.zip with results.json at its root. ``--identity`` adds HOTA,
DetA, AssA, IDF1 (fractions) and IDSW (count) computed by TrackEval, each predicted track scored
once under its highest-scoring category (``--identity-all-entries``: every entry a track).
``--check`` validates the GT and the results exactly as scoring does, without scoring. Exit
status: 0 on success, 1 when the files are invalid (the messages name the file part, the entry,
its id and the field at fault).

Only numpy and pycocotools are imported (trackeval with ``--identity``); neither torch nor
detectron2 (see ``maskprop_d2/__init__.py``).
"""

import argparse
import json
import math
import os
import sys
import tempfile

from ..utils.file_io import publish_file
from .results_io import check_results, load_json, load_results
from .ytvis_eval import evaluate

IDENTITY_FORMATS = {"HOTA": "{:0.3f}", "DetA": "{:0.3f}", "AssA": "{:0.3f}", "IDF1": "{:0.3f}",
                    "IDSW": "{:d}"}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maskprop_d2.evaluation",
        description="YouTube-VIS metrics (AP/AR over video IoU) of a results.json, or --check it.",
    )
    parser.add_argument("gt_json", help="ground truth in YouTube-VIS format")
    parser.add_argument("results_json", help="results.json (or results.zip) in the official format")
    parser.add_argument(
        "--json", metavar="OUT",
        help="write the 12 stats (fractions, -1 = undefined), and the identity metrics",
    )  # fmt: skip
    parser.add_argument(
        "--check", action="store_true", help="only validate the results, no scoring"
    )
    parser.add_argument("--per-category", action="store_true", help="also print AP per category")
    parser.add_argument(
        "--identity", action="store_true",
        help="also HOTA, DetA, AssA, IDF1 (fractions) and IDSW (count), by TrackEval "
        "(class-averaged over all GT categories)",
    )  # fmt: skip
    parser.add_argument(
        "--identity-max-gb", type=_positive_gb, default=4.0, metavar="GB",
        help="refuse --identity when TrackEval's estimated peak memory exceeds this (4)",
    )  # fmt: skip
    parser.add_argument(
        "--identity-all-entries", action="store_true",
        help="score every results entry as a track of its category (default: masks repeated "
        "under several categories count once, under the highest-scoring one)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    json_tmp, made = None, []
    if args.json and not args.check:
        # before any scoring: the output must be writable (a hidden temporary file next to it,
        # renamed onto it once the stats are written)
        json_tmp = _reserve_output(args.json, made)
        if json_tmp is None:
            return 1
    rc = 1
    try:
        rc = _run(args, json_tmp)
        return rc
    finally:
        if json_tmp is not None and os.path.exists(json_tmp):
            os.remove(json_tmp)
        if rc != 0:  # the folders made for --json, when nothing was written into them
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    break


def _positive_gb(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--identity-max-gb must be a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError("--identity-max-gb must be a finite number > 0")
    return v


def _reserve_output(path, made):
    """A temporary file in ``path``'s folder (created; the folders made are appended to
    ``made``, outermost first), or None after printing why not."""
    if os.path.isdir(path):
        print("error: --json {} is a folder".format(path), file=sys.stderr)
        return None
    out_dir = os.path.dirname(os.path.abspath(path))
    missing = []
    d = out_dir
    while d and not os.path.exists(d) and os.path.dirname(d) != d:
        missing.append(d)
        d = os.path.dirname(d)
    try:
        for m in reversed(missing):
            os.mkdir(m)
            made.append(m)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=out_dir)
    except OSError as e:
        print("error: cannot write --json {}: {}".format(path, e.strerror or e), file=sys.stderr)
        for m in reversed(made):
            try:
                os.rmdir(m)
            except OSError:
                break
        del made[:]
        return None
    os.close(fd)
    return tmp


def _run(args, json_tmp) -> int:
    try:
        gt = load_json(args.gt_json)
        results = load_results(args.results_json)
        if not isinstance(gt, dict) or "videos" not in gt or "categories" not in gt:
            raise ValueError(
                "{} is not a YouTube-VIS GT file (no videos/categories)".format(args.gt_json)
            )
        if not isinstance(gt["videos"], list):
            raise ValueError("{}: 'videos' must be a list".format(args.gt_json))
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
        stats = res.as_dict()
        identity = None
        if args.identity:
            from .identity import identity_metrics

            identity = identity_metrics(gt, results,
                                        max_bytes=int(args.identity_max_gb * 2**30),
                                        best_category=not args.identity_all_entries)
            stats.update(identity)
    except ValueError as e:
        print("error: {}".format(e), file=sys.stderr)
        return 1
    except (RecursionError, OverflowError, MemoryError) as e:  # a backstop: one line, no trace
        print("error: {} while reading {} / {}: {}".format(
            type(e).__name__, args.gt_json, args.results_json, str(e)[:200]), file=sys.stderr)
        return 1

    print(res.summary())
    if identity is not None:
        parts = ["{} {}".format(k, IDENTITY_FORMATS[k].format(v)) for k, v in identity.items()]
        print(" Identity (TrackEval, class-averaged): " + ", ".join(parts))
    if args.per_category:
        for cid in res.category_ids:
            ap = res.per_category_ap[cid]
            print(
                "AP-{}: {}".format(
                    res.category_names.get(cid, cid),
                    "nan" if math.isnan(ap) else "{:0.3f}".format(ap),
                )
            )
    if json_tmp is not None:
        try:
            with open(json_tmp, "w") as f:
                json.dump(stats, f, indent=2)
            publish_file(json_tmp, args.json)
        except OSError as e:
            print("error: cannot write --json {}: {}".format(args.json, e.strerror or e),
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
