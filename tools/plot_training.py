#!/usr/bin/env python
"""Training curves from detectron2's ``metrics.json``: losses, val AP and the propagation head's
mean soft IoU per temporal distance, against iteration, as one PNG.

``metrics.json`` has one JSON object per line: training scalars every 20 iterations
(``total_loss``, ``loss_*``, ``prop_siou/d{δ}``), and the evaluation results (``segm/AP``, ...)
at the iterations where ``TEST.EVAL_PERIOD`` ran the streaming evaluator.

Usage::

    python tools/plot_training.py output/synthetic/maskprop_tiny/metrics.json \
        --out benchmarks/training_curve_synthetic.png
"""

import argparse
import json
import os
import re
from collections import defaultdict


def read_metrics(path):
    """{key: [(iteration, value), ...]} from a metrics.json; a later record of the same
    iteration and key (a resumed run) replaces the earlier one."""
    series = defaultdict(dict)
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit("{}: line {} is not JSON ({})".format(path, n, e)) from None
            it = rec.get("iteration")
            if it is None:
                continue
            for k, v in rec.items():
                if k != "iteration" and isinstance(v, (int, float)):
                    series[k][int(it)] = float(v)
    return {k: sorted(v.items()) for k, v in series.items()}


def plot(series, out, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for k in sorted(series):
        if k == "total_loss" or k.startswith("loss_"):
            xs, ys = zip(*series[k], strict=True)
            ax.plot(xs, ys, label=k, lw=2 if k == "total_loss" else 1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("training losses")
    ax.legend(fontsize=7)
    ax = axes[1]
    for k in ("segm/AP", "segm/AP50", "segm/AP75"):
        if k in series:
            xs, ys = zip(*series[k], strict=True)
            ax.plot(xs, ys, "o-", label=k.split("/")[1])
    ax.set_xlabel("iteration")
    ax.set_ylabel("val AP (%)")
    ax.set_title("val AP (streaming video evaluator)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    deltas = sorted(
        (int(m.group(1)), k) for k in series if (m := re.fullmatch(r"prop_siou/d(\d+)", k))
    )
    for d, k in deltas:
        xs, ys = zip(*series[k], strict=True)
        ax.plot(xs, ys, label="δ={}".format(d))
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean soft IoU")
    ax.set_title("propagated masks vs GT (training clips)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "metrics",
        nargs="+",
        help="metrics.json files (merged: e.g. a training run "
        "and the evaluations of its checkpoints, one JSON object per line each)",
    )
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    series = {}
    for path in args.metrics:
        for k, v in read_metrics(path).items():
            series[k] = sorted(dict(series.get(k, []) + v).items())
    plot(series, args.out, args.title)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
