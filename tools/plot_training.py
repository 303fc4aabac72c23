#!/usr/bin/env python
"""Training curves from detectron2's ``metrics.json`` files (merged; a later record of the same
iteration and key replaces an earlier one): losses, val AP (``segm/AP*``) and the propagation
head's mean soft IoU per temporal distance (``prop_siou/d{δ}``), against iteration, as one PNG.

    python tools/plot_training.py output/synthetic/maskprop_tiny/metrics.json \\
        benchmarks/training_curve_checkpoints.json --out benchmarks/training_curve_synthetic.png
"""

import argparse
import json
import os
import re
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as bc  # noqa: E402


def read_metrics(paths):
    """{key: [(iteration, value), ...]} of numeric scalars, from JSON-lines files."""
    series = defaultdict(dict)
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line) if line.strip() else {}
                except json.JSONDecodeError as e:
                    raise SystemExit("{}: line {} is not JSON ({})".format(path, n, e)) from None
                for k, v in rec.items():
                    if "iteration" in rec and k != "iteration" and isinstance(v, (int, float)):
                        series[k][int(rec["iteration"])] = float(v)
    return {k: sorted(v.items()) for k, v in series.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("metrics", nargs="+", help="metrics.json files (one JSON object per line)")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    a = p.parse_args(argv)
    series = read_metrics(a.metrics)
    panels = [
        ("training losses", "loss", [k for k in sorted(series) if k == "total_loss"
                                     or k.startswith("loss_")]),
        ("val AP (streaming video evaluator)", "AP (%)",
         [k for k in ("segm/AP", "segm/AP50", "segm/AP75") if k in series]),
        ("propagated masks vs GT (training clips)", "mean soft IoU",
         sorted((k for k in series if re.fullmatch(r"prop_siou/d\d+", k)),
                key=lambda k: int(k.split("/d")[1]))),
    ]  # fmt: skip
    plt = bc.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (title, ylabel, keys) in zip(axes, panels, strict=True):
        for k in keys:
            xs, ys = zip(*series[k], strict=True)
            ax.plot(xs, ys, "o-" if k.startswith("segm/") else "-", label=k.split("/")[-1],
                    lw=2 if k == "total_loss" else 1)  # fmt: skip
        ax.set(title=title, xlabel="iteration", ylabel=ylabel)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    fig.suptitle(a.title)
    bc.save_plot(fig, a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
