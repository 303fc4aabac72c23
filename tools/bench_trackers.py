#!/usr/bin/env python
"""The paper's comparison on the synthetic benchmark: every tracker on the same detections.

Rows: MaskProp with the paper's clip matching (no re-identification memory, no covered-mask
suppression) at each ``--half-lengths`` T; MaskProp as configured (the default: re-identification
memory, covered-mask suppression) at the config's T, and the same with the tracking head's
embedding for re-identification; flow propagation and the tracking head at the config's T, frame
linking; one ``MaskTrackRCNN`` checkpoint for all. Columns: AP/AR and
TrackEval's HOTA, DetA, AssA, IDF1, IDSW (``YTVISEvaluator``), and each tracker's CPU ms per
frame on top of the detector, which runs once per frame: its detections are cached and served
to every row. Oracle rows (off with ``--no-oracle``): ground-truth detections (score 1, their
class, GT masks) on the real features through each tracker. Splits: ``--standard-root`` and
``--hard-root`` (``python -m maskprop_d2.data.synthetic --difficulty hard --num-train 1 --out
ROOT`` makes the latter) and ``--occlusion-root`` (``--difficulty occlusion``: long
occlusions); ``--max-videos N`` for development. Spread: the default MaskProp row against the
best baseline by AP (AP) and by HOTA (HOTA), paired bootstrap over videos
(``tools/bootstrap_compare.py``; ``--bootstrap`` resamples for AP, ``--bootstrap-hota`` for
HOTA, 0 turns either off).

    python tools/bench_trackers.py --weights output/synthetic/masktrack_tiny/model_final.pth
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from bench_common import environment, markdown_table, pyplot, save_plot, write_report  # noqa: E402

SEGM = ("AP", "AP50", "AP75", "AR1", "AR10")
IDENT = ("HOTA", "DetA", "AssA", "IDF1", "IDSW")


# ----------------------------------------------------------------------------- data
def register_split(name, root, max_videos, work_dir):
    """Register ``root``/valid.json (first ``max_videos`` videos) as ``name``; returns the GT."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from maskprop_d2.data import register_ytvis_instances
    from maskprop_d2.data.synthetic import SYNTHETIC_CATEGORIES

    json_file = os.path.join(root, "valid.json")
    if not os.path.isfile(json_file):
        raise SystemExit(
            f"{json_file} is missing: make it with `python -m maskprop_d2.data.synthetic --out "
            f"{root}` (add `--difficulty hard --num-train 1` for the hard split, "
            "`--difficulty occlusion --num-train 1` for the occlusion split)"
        )
    with open(json_file) as f:
        gt = json.load(f)
    if max_videos:
        keep = {v["id"] for v in gt["videos"][:max_videos]}
        gt["videos"] = [v for v in gt["videos"] if v["id"] in keep]
        gt["annotations"] = [a for a in gt["annotations"] if a["video_id"] in keep]
        json_file = os.path.join(work_dir, name + ".json")
        with open(json_file, "w") as f:
            json.dump(gt, f)
    if name in DatasetCatalog.list():  # registered by an earlier run in this process
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    cats = sorted(SYNTHETIC_CATEGORIES, key=lambda c: c["id"])
    meta = {"thing_classes": [c["name"] for c in cats]}
    register_ytvis_instances(name, meta, json_file, os.path.join(root, "valid", "JPEGImages"))
    return gt


def gt_by_frame(dataset_name):
    """file name -> (classes (n,), masks (n, H, W) bool) of the frame's non-crowd GT objects."""
    from detectron2.data import DatasetCatalog

    from maskprop_d2.utils.rle import decode_segmentation

    out = {}
    for rec in DatasetCatalog.get(dataset_name):
        h, w = rec["height"], rec["width"]
        for fn, anns in zip(rec["file_names"], rec["annotations"], strict=True):
            anns = [a for a in anns if not a.get("iscrowd", 0)]
            masks = [decode_segmentation(a["segmentation"], h, w) for a in anns]
            out[fn] = (
                torch.tensor([a["category_id"] for a in anns], dtype=torch.long),
                torch.from_numpy(np.array(masks, dtype=bool).reshape(len(anns), h, w)),
            )
    return out


# ----------------------------------------------------------------------------- detections
class SharedDetector:
    """Stands in for ``model.detect_frame``: the cached real detections of each frame, or
    (``oracle``) ground-truth detections on the cached backbone features."""

    def __init__(self, model):
        self.model = model
        self.real = model.detect_frame
        self.cache = {}
        self.gt = None  # file name -> (classes, masks) when serving oracle detections

    def __call__(self, frame, score_thresh, topk, nms_thresh=1.0):
        det = self.cache.get(frame["file_name"])
        if det is None:
            det = self.real(frame, score_thresh, topk, nms_thresh)
            self.cache[frame["file_name"]] = det
        return det if self.gt is None else self._oracle(frame, det)

    def _oracle(self, frame, det):
        from detectron2.structures import BitMasks, Boxes, Instances

        from maskprop_d2.modeling.meta_arch import FrameDetections
        from maskprop_d2.utils.masks import boxes_from_masks

        classes, masks = self.gt[frame["file_name"]]
        h, w = det.images.image_sizes[0]
        small = torch.nn.functional.interpolate(masks[:, None].float(), size=(h, w))[:, 0] > 0.5
        keep = small.flatten(1).any(1)
        classes, small = classes[keep], small[keep]
        boxes = boxes_from_masks(small).float()
        k = self.model.roi_heads.num_classes
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(boxes)
        inst.scores = torch.ones(len(classes))
        inst.pred_classes = classes
        inst.class_probs = torch.nn.functional.one_hot(classes, k).float()
        heads = self.model.roi_heads
        side = 2 * heads.mask_pooler.output_size[0] if heads.mask_on else 28
        probs = BitMasks(small).crop_and_resize(boxes, side).float()
        return FrameDetections(det.images, det.features, inst, probs)


# ----------------------------------------------------------------------------- rows
TRACKERS = ("maskprop", "maskprop_default", "maskprop_default_th", "flow_propagation",
            "tracking_head", "frame_linking")  # fmt: skip
# rows that run the maskprop tracker as configured: the re-identification embedding (None: the
# config's)
DEFAULT_ROWS = {"maskprop_default": None, "maskprop_default_th": "track_head"}


def rows_for(cfg, half_lengths, trackers=TRACKERS):
    t0 = cfg.INPUT.CLIP.HALF_LENGTH
    rows = [(f"MaskProp (paper's matching), T = {t}", "maskprop", t) for t in half_lengths]
    rows += [
        (f"MaskProp default, T = {t0}", "maskprop_default", t0),
        (f"MaskProp default, tracking-head embedding, T = {t0}", "maskprop_default_th", t0),
    ]
    rows += [
        (f"flow propagation (OpenCV {cfg.MODEL.MASKPROP.INFERENCE.FLOW_METHOD}), T = {t0}",
         "flow_propagation", t0),
        ("tracking head (MaskTrack R-CNN)", "tracking_head", t0),
        ("frame linking", "frame_linking", t0),
    ]  # fmt: skip
    return [r for r in rows if r[1] in trackers]


def run_row(cfg0, model, dataset, tracker, t, out_dir):
    """Inference + evaluation of one row; returns (metrics, tracker CPU seconds, frames)."""
    from detectron2.evaluation import inference_on_dataset

    from maskprop_d2.data import build_video_test_loader
    from maskprop_d2.evaluation import YTVISEvaluator
    from maskprop_d2.inference import VideoInferenceAdapter

    cfg = cfg0.clone()
    cfg.defrost()
    cfg.INPUT.CLIP.HALF_LENGTH = t
    cfg.MODEL.MASKPROP.INFERENCE.TRACKER = tracker
    if tracker in DEFAULT_ROWS:  # MaskProp as configured
        cfg.MODEL.MASKPROP.INFERENCE.TRACKER = "maskprop"
        if DEFAULT_ROWS[tracker]:
            cfg.MODEL.MASKPROP.INFERENCE.REID.EMBEDDING = DEFAULT_ROWS[tracker]
    else:  # the paper's clip matching (the flow tracker's too), whatever the config's default
        cfg.MODEL.MASKPROP.INFERENCE.REID.ENABLED = False
        cfg.MODEL.MASKPROP.INFERENCE.SUPPRESS_COVERED = 1.0
    adapter = VideoInferenceAdapter.from_config(cfg, model)
    spent = {"cpu": 0.0, "frames": 0}

    def timed(inputs):
        c = time.process_time()
        out = adapter(inputs)
        spent["cpu"] += time.process_time() - c
        spent["frames"] += sum(int(v["length"]) for v in inputs)
        return out

    os.makedirs(out_dir, exist_ok=True)
    evaluator = YTVISEvaluator.from_config(cfg, dataset, output_dir=out_dir, distributed=False)
    res = inference_on_dataset(timed, build_video_test_loader(cfg, dataset), evaluator)
    return res, spent["cpu"], spent["frames"]


def metrics_row(label, res, cpu, frames):
    segm, ident = res["segm"], res.get("identity", {})
    vals = [segm[k] for k in SEGM]
    vals += [ident[k] for k in IDENT]  # the evaluator gives percent (IDSW: a count)
    return {"label": label, "values": vals, "ms_per_frame": 1000 * cpu / max(frames, 1)}


def fmt(row):
    vals = zip(SEGM + IDENT, row["values"], strict=True)
    cells = ["{:.0f}".format(v) if k == "IDSW" else "{:.1f}".format(v) for k, v in vals]
    return [row["label"]] + cells + ["{:.1f}".format(row["ms_per_frame"])]


def split_line(gt):
    n = sum(v["length"] for v in gt["videos"])
    return f"{len(gt['videos'])} videos, {n} frames, {len(gt['annotations'])} GT tracks"


def short_label(label):
    for long, short in (("MaskProp default", "MP default"), ("MaskProp (paper's matching)", "MP"),
                        (", tracking-head embedding", " th"), ("flow propagation", "flow"),
                        (" (MaskTrack R-CNN)", "")):  # fmt: skip
        label = label.replace(long, short)
    return label.split(" (")[0]


def plot(path, results):
    fig, axes = pyplot().subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (split, rows) in zip(axes[0], results.items(), strict=True):
        labels = [short_label(r["label"]) for r in rows["real"]]
        x = np.arange(len(labels))
        ap = [r["values"][0] for r in rows["real"]]
        hota = [r["values"][len(SEGM)] for r in rows["real"]]
        ax.bar(x - 0.2, ap, 0.4, label="AP")
        ax.bar(x + 0.2, hota, 0.4, label="HOTA")
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{split} split (synthetic)")
        ax.set_ylabel("%")
        ax.legend()
    save_plot(fig, path)


def bootstrap_line(gt, real, outs, t0, args, best_category=True):
    """One sentence: the default MaskProp row (else MaskProp at T = t0, else its first row) minus
    the best baseline by AP (AP) and by HOTA (HOTA), with 95 % paired-bootstrap intervals over
    videos ("" when either row is missing or both are off)."""
    from bootstrap_compare import compare

    mp = [r for r in real if outs[r["label"]][0] == "maskprop_default"]
    mp = mp or [r for r in real if outs[r["label"]][0] == "maskprop" and outs[r["label"]][1] == t0]
    mp = mp or [r for r in real if outs[r["label"]][0] == "maskprop"]
    base = [r for r in real if not outs[r["label"]][0].startswith("maskprop")]
    if not mp or not base or not (args.bootstrap or args.bootstrap_hota):
        return ""

    def load(label):
        with open(os.path.join(outs[label][2], "results.json")) as f:
            return json.load(f)

    mine = load(mp[0]["label"])
    parts = []
    if args.bootstrap:
        best = max(base, key=lambda r: r["values"][0])
        d, lo, hi = compare(gt, load(best["label"]), mine, args.bootstrap)["AP"]
        parts.append(f"AP {d:+.1f} (95 % interval {lo:+.1f} .. {hi:+.1f}, {args.bootstrap} "
                     f"resamples) against the best by AP, {best['label']}")  # fmt: skip
    if args.bootstrap_hota:
        best = max(base, key=lambda r: r["values"][len(SEGM)])
        d, lo, hi = compare(gt, load(best["label"]), mine, args.bootstrap_hota, hota=True,
                            best_category=best_category)["HOTA"]
        parts.append(f"HOTA {d:+.1f} (95 % interval {lo:+.1f} .. {hi:+.1f}, "
                     f"{args.bootstrap_hota} resamples) against the best by HOTA, "
                     f"{best['label']}")  # fmt: skip
    return (f"{mp[0]['label']} minus the best baseline, paired bootstrap over videos: "
            + "; ".join(parts) + ".")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="a MaskTrackRCNN checkpoint")
    ap.add_argument("--config", default=os.path.join(REPO, "configs/synthetic/masktrack_tiny.yaml"))
    ap.add_argument("--half-lengths", type=int, nargs="+", default=[1, 2, 4, 6])
    ap.add_argument("--standard-root", default=os.path.join(REPO, "datasets/synthetic_ytvis"))
    ap.add_argument("--hard-root", default=os.path.join(REPO, "datasets/synthetic_ytvis_hard"))
    ap.add_argument("--occlusion-root",
                    default=os.path.join(REPO, "datasets/synthetic_ytvis_occlusion"))
    ap.add_argument("--splits", nargs="+", default=["standard", "hard", "occlusion"],
                    choices=["standard", "hard", "occlusion"])
    ap.add_argument("--trackers", nargs="+", default=list(TRACKERS), choices=TRACKERS)
    ap.add_argument("--no-oracle", action="store_true")
    ap.add_argument("--max-videos", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=200, help="resamples for the AP spread")
    ap.add_argument("--bootstrap-hota", type=int, default=50, help="resamples for HOTA")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks/trackers_synthetic.md"))
    ap.add_argument("--work-dir", default="/tmp/bench_trackers")
    ap.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    args = ap.parse_args(argv)

    from detectron2.modeling import build_model

    from maskprop_d2.checkpoint import load_inference_weights
    from maskprop_d2.config import get_maskprop_cfg

    torch.set_num_threads(args.threads)
    started = time.time()
    env_before = environment()
    cfg = get_maskprop_cfg(args.config, ["MODEL.WEIGHTS", args.weights] + args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.TEST.IDENTITY_METRICS = True
    model = build_model(cfg)
    load_inference_weights(model, args.weights, args.config)
    model.eval()
    detector = SharedDetector(model)
    model.detect_frame = detector  # every tracker's detections come from here
    os.makedirs(args.work_dir, exist_ok=True)

    roots = {"standard": args.standard_root, "hard": args.hard_root,
             "occlusion": args.occlusion_root}  # fmt: skip
    results = {}
    for split in args.splits:
        name = f"bench_trackers_{split}"
        gt = register_split(name, roots[split], args.max_videos, args.work_dir)
        detector.cache.clear()
        detector.gt = None
        # the shared detector alone, once: fills the cache, gives its cost per frame
        from maskprop_d2.data import build_video_test_loader

        c, frames = time.process_time(), 0
        with torch.no_grad():
            for (video,) in build_video_test_loader(cfg, name):
                for frame in video["frames"]:
                    detector(frame, cfg.MODEL.MASKPROP.INFERENCE.SCORE_THRESH,
                             cfg.MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME,
                             cfg.MODEL.MASKPROP.INFERENCE.NMS_THRESH)  # fmt: skip
                    frames += 1
        det_ms = 1000 * (time.process_time() - c) / max(frames, 1)
        real, oracle, outs = [], [], {}
        for label, tracker, t in rows_for(cfg, args.half_lengths, args.trackers):
            print(f"[{split}] {label}", flush=True)
            out = os.path.join(args.work_dir, split, tracker + str(t))
            res, cpu, n = run_row(cfg, model, name, tracker, t, out)
            real.append(metrics_row(label, res, cpu, n))
            outs[label] = (tracker, t, out)
        spread = bootstrap_line(gt, real, outs, cfg.INPUT.CLIP.HALF_LENGTH, args,
                                cfg.TEST.IDENTITY_BEST_CATEGORY)
        if not args.no_oracle:
            detector.gt = gt_by_frame(name)
            t0 = cfg.INPUT.CLIP.HALF_LENGTH
            for label, tracker, t in rows_for(cfg, [t0], args.trackers):
                print(f"[{split}] oracle: {label}", flush=True)
                out = os.path.join(args.work_dir, split, "oracle_" + tracker + str(t))
                res, cpu, n = run_row(cfg, model, name, tracker, t, out)
                oracle.append(metrics_row(label, res, cpu, n))
            detector.gt = None
        results[split] = {"gt": gt, "real": real, "oracle": oracle, "detector_ms": det_ms,
                          "spread": spread}  # fmt: skip
        detector.cache.clear()

    png = os.path.splitext(args.out)[0] + ".png"
    plot(png, results)
    head = ["tracker", *SEGM, *IDENT, "ms/frame"]
    cmd = "python tools/bench_trackers.py " + " ".join(
        a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    lines = [
        "# Trackers on one detector: MaskProp vs flow propagation, MaskTrack R-CNN's tracking "
        "head and frame linking (synthetic data)",
        "",
        f"- command: `{cmd}` ({time.time() - started:.0f} s)",
        f"- config: `{os.path.relpath(args.config, REPO)}`, weights `{args.weights}`",
    ]
    lines += ["- " + s for s in env_before]
    lines += ["- metrics in percent except IDSW (a count); AP..AR10 by the project's YouTube-VIS "
              "evaluator, HOTA..IDSW by TrackEval (class-averaged; "
              + ("each ID once, under its best category" if cfg.TEST.IDENTITY_BEST_CATEGORY
                 else "every results entry a track")
              + "); ms/frame = the tracker's CPU time per frame on top of the shared detector "
              "(one thread)", ""]  # fmt: skip
    for split, r in results.items():
        lines += [f"## {split.capitalize()} split", "", split_line(r["gt"]) + "; the detector "
                  f"alone: {r['detector_ms']:.1f} ms/frame.", ""]  # fmt: skip
        lines += markdown_table(head, [fmt(x) for x in r["real"]]) + [""]
        if r["spread"]:
            lines += [r["spread"], ""]
        if r["oracle"]:
            lines += [f"Oracle (ground-truth detections through each tracker, {split}):", ""]
            lines += markdown_table(head, [fmt(x) for x in r["oracle"]]) + [""]
    lines += [f"![AP and HOTA per tracker]({os.path.basename(png)})", ""]
    write_report("\n".join(lines), args.out)
    summary = {s: {k: r[k] for k in ("real", "oracle", "detector_ms", "spread")}
               for s, r in results.items()}  # fmt: skip
    write_report(json.dumps(summary, indent=1), os.path.splitext(args.out)[0] + ".json")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
