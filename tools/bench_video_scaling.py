#!/usr/bin/env python
"""Streaming video inference: time and peak memory vs video length and vs instances per frame.

Every measurement is a FRESH subprocess (``--worker``) that builds a
``VideoPredictor``, streams N frames through it (read with ``cv2.VideoCapture`` / generated one at
a time, never all held), consumes every output and RLE-encodes its masks (as the evaluator does;
the RLEs are counted, not kept), and reports:

* wall time and CPU time (``time.process_time``: less disturbed by other jobs on a shared
  machine) of the whole stream, per frame;
* memory: ``ru_maxrss`` (peak RSS) and the current RSS (``/proc/self/statm``) after the model is
  built, after the first output frame (the baseline of "peak growth") and at the end;
* a timeline, sampled every ``--probe-every`` output frames: RSS, peak RSS, glibc heap bytes in
  use and free-but-kept (``mallinfo2``), live tensors (count and bytes, found with ``gc``) and the
  sizes of the streaming state (features and detections held, frames with pending track masks,
  stored clips of the matcher, video IDs handed out). The probes' own time is not counted.

Sweeps:

* length: ``--sources`` x ``--lengths`` (``vtest`` = OpenCV's vtest.avi, 768x576, 795 frames,
  looped past its end; ``synthetic`` = random texture + moving shapes, 768x576, generated);
* before the fix (``--legacy-length N``): the same stream with the previous ``detect_frame``,
  which ran the mask head on every box detection (up to TEST.DETECTIONS_PER_IMAGE) and filtered
  afterwards; its timeline shows the heap growth that fix removed;
* instances per frame (``--instances 1 2 5 10 20``): ``--instances-length`` frames of
  ``--instances-source`` with MODEL.MASKPROP.INFERENCE.SCORE_THRESH 0,
  MODEL.ROI_HEADS.SCORE_THRESH_TEST 0 and TOPK_PER_FRAME N, so every frame has N detections.

Writes ``--out`` (markdown) and, next to it, ``<out>.png`` (length) and ``<out>_instances.png``.
Everything after a line ``<!-- notes -->`` in an existing ``--out`` is kept (hand-written notes).

Usage:
    python tools/bench_video_scaling.py --weights CKPT --video /tmp/vtest.avi \
        --lengths 100 200 400 800 --sources vtest synthetic --legacy-length 800 \
        --instances 1 2 5 10 20 --out benchmarks/video_scaling_cpu.md

Diagnostics (one worker, prints ``RESULT {json}``): ``--worker --source S --length N
--weights CKPT [--legacy-detect] [--malloc-trim-every K] [--tracemalloc]``; glibc tunables such
as ``MALLOC_MMAP_THRESHOLD_=262144`` can be set in its environment.
"""

import argparse
import ctypes
import ctypes.util
import datetime
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time

from bench_common import cpu_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = 768, 576
NOTES_MARK = "<!-- notes -->"


# ----------------------------------------------------------------------------- frame sources
def vtest_frames(path, n):
    import cv2

    cap = cv2.VideoCapture(path)
    i = 0
    while i < n:
        ok, frame = cap.read()
        if not ok:  # loop the video past its end
            cap.release()
            cap = cv2.VideoCapture(path)
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError("cannot read " + path)
        yield frame
        i += 1
    cap.release()


def synthetic_frames(n, seed=0):
    import cv2
    import numpy as np

    rng = np.random.RandomState(seed)
    bg = rng.randint(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
    bg = cv2.resize(bg, (W, H), interpolation=cv2.INTER_LINEAR)
    shapes = []
    for _ in range(5):
        shapes.append(
            dict(
                kind=rng.randint(2),
                pos=rng.uniform([60, 60], [W - 60, H - 60]),
                vel=rng.uniform(-6, 6, 2),
                size=rng.randint(30, 90),
                color=tuple(int(c) for c in rng.randint(0, 256, 3)),
            )
        )
    for _ in range(n):
        frame = bg.copy()
        noise = rng.randint(-12, 13, (H, W, 1), dtype=np.int16)
        frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        for s in shapes:
            s["pos"] += s["vel"]
            for d, lim in ((0, W), (1, H)):
                if not s["size"] <= s["pos"][d] <= lim - s["size"]:
                    s["vel"][d] *= -1
                    s["pos"][d] = min(max(s["pos"][d], s["size"]), lim - s["size"])
            c = (int(s["pos"][0]), int(s["pos"][1]))
            if s["kind"] == 0:
                cv2.circle(frame, c, s["size"] // 2, s["color"], -1)
            else:
                h = s["size"] // 2
                cv2.rectangle(frame, (c[0] - h, c[1] - h), (c[0] + h, c[1] + h), s["color"], -1)
        yield frame


# ----------------------------------------------------------------------------- memory probes
def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def cur_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class GlibcHeap:
    """glibc's heap statistics (``mallinfo2``, all arenas) and ``malloc_trim``; ``load()`` gives
    None where they are not available (not glibc, or glibc < 2.33)."""

    def __init__(self, libc):
        self._libc = libc
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int

    @classmethod
    def load(cls):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallinfo2  # noqa: B018  (AttributeError where missing)
            libc.malloc_trim  # noqa: B018
        except (OSError, AttributeError):
            return None
        return cls(libc)

    def info(self):
        m = self._libc.mallinfo2()
        return dict(
            heap_mib=m.arena / 2**20,  # brk/arena heap obtained from the OS
            heap_used_mib=m.uordblks / 2**20,  # ... of it in use
            heap_free_mib=m.fordblks / 2**20,  # ... free but kept by malloc
            mmapped_mib=m.hblkhd / 2**20,  # blocks mmapped individually
        )

    def trim(self):
        return self._libc.malloc_trim(0)


def live_tensors(torch):
    """(number, MiB of their storages) of the tensors reachable by gc (storages shared by views
    are counted once)."""
    n, seen, nbytes = 0, set(), 0
    for o in gc.get_objects():
        try:
            if not isinstance(o, torch.Tensor):
                continue
            n += 1
            st = o.untyped_storage()
            key = st.data_ptr()
            if key and key not in seen:
                seen.add(key)
                nbytes += st.nbytes()
        except Exception:  # noqa: BLE001  (meta/sparse tensors have no storage)
            continue
    return n, nbytes / 2**20


def state_sizes(vi):
    """Sizes of the streaming state of the tracker."""
    return vi.state_size()


# ----------------------------------------------------------------------------- worker
def legacy_detect_frame(model, frame, score_thresh, topk, nms_thresh=1.0):
    """``detect_frame`` before the fix: the whole ROI heads (the mask head on every box detection,
    up to TEST.DETECTIONS_PER_IMAGE), then score threshold and top-k. Same outputs."""
    import torch

    images = model.preprocess_image([frame])
    features = model.backbone(images.tensor)
    proposals, _ = model.proposal_generator(images, features, None)
    inst = model.roi_heads(images, features, proposals, None)[0][0]
    inst = inst[inst.scores >= score_thresh]
    if len(inst) > topk:
        inst = inst[torch.topk(inst.scores, topk).indices]
    if inst.has("pred_masks"):
        probs = inst.pred_masks[:, 0]
    else:
        probs = inst.pred_boxes.tensor.new_ones((len(inst), 1, 1))
    return images, features, inst, probs


def setup_cfg(args):
    sys.path.insert(0, REPO)
    from detectron2.config import get_cfg

    from maskprop_d2.config import add_maskprop_config

    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, args.config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = args.weights
    cfg.MODEL.MASKPROP.INFERENCE.SCORE_THRESH = args.score_thresh
    cfg.MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME = args.topk
    if args.roi_score_thresh is not None:
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.roi_score_thresh
    cfg.INPUT.MIN_SIZE_TEST = args.min_size
    cfg.INPUT.MAX_SIZE_TEST = args.max_size
    cfg.INPUT.CLIP.HALF_LENGTH = 3
    cfg.freeze()
    return cfg


def worker(args):
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, REPO)
    from maskprop_d2.inference import VideoPredictor, encode_frame_masks
    from maskprop_d2.modeling import MaskProp

    if args.legacy_detect:
        MaskProp.detect_frame = legacy_detect_frame
    heap = GlibcHeap.load()
    if args.malloc_trim_every and heap is None:
        raise SystemExit("--malloc-trim-every needs glibc's malloc_trim")
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    cfg = setup_cfg(args)
    predictor = VideoPredictor(cfg)
    vi = predictor.tracker
    model_rss = cur_rss_mib()
    n = args.length
    frames = vtest_frames(args.video, n) if args.source == "vtest" else synthetic_frames(n, seed=0)
    timeline = []
    probe_wall = probe_cpu = trim_s = 0.0

    def probe(k):
        w0, c0 = time.perf_counter(), time.process_time()
        row = dict(
            frame=k,
            seconds=w0 - t0 - probe_wall,
            rss_mib=cur_rss_mib(),
            maxrss_mib=maxrss_mib(),
        )
        if heap is not None:
            row.update(heap.info())
        row["tensors"], row["tensor_mib"] = live_tensors(torch)
        row.update(state_sizes(vi))
        if args.tracemalloc:
            row["py_traced_mib"] = tracemalloc.get_traced_memory()[0] / 2**20
        timeline.append(row)
        return time.perf_counter() - w0, time.process_time() - c0

    n_out = n_masks = 0
    base_max = base_cur = t_first = None
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for _frame, out in predictor(frames):
            rles = encode_frame_masks(out)
            n_masks += len(rles)
            n_out += 1
            if args.malloc_trim_every and n_out % args.malloc_trim_every == 0:
                s = time.perf_counter()
                heap.trim()
                trim_s += time.perf_counter() - s
            if base_max is None:  # baseline: model built + first frame output produced
                base_max, base_cur = maxrss_mib(), cur_rss_mib()
                t_first = time.perf_counter() - t0
            if n_out == 1 or n_out % args.probe_every == 0 or n_out == n:
                dw, dc = probe(n_out)
                probe_wall += dw
                probe_cpu += dc
    seconds = time.perf_counter() - t0 - probe_wall
    cpu_seconds = time.process_time() - c0 - probe_cpu
    assert n_out == n, (n_out, n)
    end_max = maxrss_mib()
    res = dict(
        source=args.source,
        length=n,
        legacy_detect=bool(args.legacy_detect),
        topk=args.topk,
        score_thresh=args.score_thresh,
        roi_score_thresh=args.roi_score_thresh,
        malloc_trim_every=args.malloc_trim_every,
        malloc_env={k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        seconds=seconds,
        ms_per_frame=1000 * seconds / n,
        ms_per_frame_after_first=1000 * (seconds - t_first) / max(n - 1, 1),
        cpu_ms_per_frame=1000 * cpu_seconds / n,
        first_output_s=t_first,
        trim_ms_per_call=1000 * trim_s / max(n // max(args.malloc_trim_every, 1), 1),
        model_rss_mib=model_rss,
        base_maxrss_mib=base_max,
        base_rss_mib=base_cur,
        end_maxrss_mib=end_max,
        end_rss_mib=cur_rss_mib(),
        peak_growth_mib=end_max - base_max,
        peak_over_model_mib=end_max - model_rss,
        masks_per_frame=n_masks / n,
        # one category vote per clip track, i.e. per detection kept (score threshold, top-k)
        dets_per_frame=float(vi._tracks.votes._count.sum()) / n,
        video_ids=vi.state_size()["video_ids"],
        video_instances=len(predictor.video_instances()),
        timeline=timeline,
    )
    print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------- driver
def machine_info():
    cpu = cpu_model()
    import torch

    return dict(
        nproc=os.cpu_count(),
        cpu=cpu,
        python=platform.python_version(),
        torch=torch.__version__,
        platform=platform.platform(),
        libc=" ".join(platform.libc_ver()),
    )


def run_worker(args, source, length, extra=()):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--source",
        source,
        "--length",
        str(length),
        "--config",
        args.config,
        "--weights",
        args.weights,
        "--video",
        args.video,
        "--threads",
        str(args.threads),
        "--min-size",
        str(args.min_size),
        "--max-size",
        str(args.max_size),
        "--probe-every",
        str(args.probe_every),
    ] + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit("worker failed: " + " ".join(cmd))
    r = json.loads(lines[-1][len("RESULT ") :])
    print(
        "{:9s} N={:4d} {:6s} topk={:2d}  {:7.1f}s  {:6.1f} ms/frame  {:6.1f} CPU ms/frame  "
        "peak growth {:6.1f} MiB  peak over model {:6.1f} MiB  dets/frame {:.2f}".format(
            r["source"],
            r["length"],
            "legacy" if r["legacy_detect"] else "",
            r["topk"],
            r["seconds"],
            r["ms_per_frame"],
            r["cpu_ms_per_frame"],
            r["peak_growth_mib"],
            r["peak_over_model_mib"],
            r["dets_per_frame"],
        ),
        flush=True,
    )
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/synthetic/maskprop_tiny.yaml")
    p.add_argument("--weights", required=True)
    p.add_argument("--video", default="/tmp/vtest.avi")
    p.add_argument("--sources", nargs="+", default=["vtest", "synthetic"])
    p.add_argument("--lengths", nargs="+", type=int, default=[100, 200, 400, 800])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--score-thresh", type=float, default=0.05)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--min-size", type=int, default=96)
    p.add_argument("--max-size", type=int, default=160)
    p.add_argument("--probe-every", type=int, default=100, help="timeline sample period, frames")
    p.add_argument(
        "--legacy-length",
        type=int,
        default=0,
        help="also run the pre-fix detect_frame at this length (0: no)",
    )
    p.add_argument("--legacy-sources", nargs="+", default=None, help="default: --sources")
    p.add_argument("--instances", nargs="*", type=int, default=[], help="TOPK_PER_FRAME values")
    p.add_argument("--instances-length", type=int, default=100)
    p.add_argument("--instances-source", default="vtest")
    p.add_argument("--out", default="")
    # worker-only
    p.add_argument("--worker", action="store_true")
    p.add_argument("--source", default="vtest")
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--roi-score-thresh", type=float, default=None)
    p.add_argument("--legacy-detect", action="store_true")
    p.add_argument("--malloc-trim-every", type=int, default=0)
    p.add_argument("--tracemalloc", action="store_true")
    args = p.parse_args()
    if args.worker:
        return worker(args)

    info = machine_info()
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    base = ["--score-thresh", str(args.score_thresh), "--topk", str(args.topk)]
    lengths = [run_worker(args, s, n, base) for s in args.sources for n in args.lengths]
    legacy = []
    if args.legacy_length:
        for s in args.legacy_sources or args.sources:
            legacy.append(run_worker(args, s, args.legacy_length, base + ["--legacy-detect"]))
    instances = []
    for k in args.instances:
        extra = ["--score-thresh", "0", "--roi-score-thresh", "0", "--topk", str(k)]
        instances.append(run_worker(args, args.instances_source, args.instances_length, extra))
    load_after = os.getloadavg()

    plots = []
    if args.out:
        stem = os.path.splitext(args.out)[0]
        plots = [stem + ".png", stem + "_instances.png" if instances else None]
        plot_lengths(args, lengths, legacy, plots[0])
        if instances:
            plot_instances(args, instances, plots[1])
    md = render(args, info, started, load_before, load_after, lengths, legacy, instances, plots)
    if args.out:
        notes = ""
        if os.path.exists(args.out):
            with open(args.out) as f:
                old = f.read()
            if NOTES_MARK in old:
                notes = old[old.index(NOTES_MARK) :]
        with open(args.out, "w") as f:
            f.write(md + ("\n" + notes if notes else ""))
    print(md)


# ----------------------------------------------------------------------------- report
def _f(x, fmt="{:.1f}"):
    return "–" if x is None else fmt.format(x)


def render(args, info, started, load_before, load_after, lengths, legacy, instances, plots):
    cmd = "python " + " ".join([os.path.relpath(os.path.abspath(__file__), REPO)] + sys.argv[1:])
    rw, rh = _resized(args.min_size, args.max_size)
    lines = [
        "# Streaming video inference scaling (CPU)",
        "",
        "Wall time, CPU time and memory of `VideoPredictor` streaming inference vs video length "
        "and vs instances per frame. Each row is a fresh process; frames "
        "are read with `cv2.VideoCapture` / generated one at a time, every output is consumed and "
        "its masks RLE-encoded with `encode_frame_masks` (counted, not kept).",
        "",
        "- command: `{}`".format(cmd),
        "- date: {}".format(started.strftime("%Y-%m-%d %H:%M UTC")),
        "- machine: {} CPUs ({}), {}, {}".format(
            info["nproc"], info["cpu"], info["platform"], info["libc"]
        ),
        "- python {}, torch {}, torch threads {}".format(
            info["python"], info["torch"], args.threads
        ),
        "- load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; "
        "after: {:.2f} {:.2f} {:.2f}".format(*load_before, *load_after),
        "- model: `{}` + weights `{}`".format(args.config, args.weights),
        "- settings: INPUT.MIN_SIZE_TEST={}, MAX_SIZE_TEST={} (768x576 frames -> {}x{}), "
        "CLIP.HALF_LENGTH=3, INFERENCE.SCORE_THRESH={}, TOPK_PER_FRAME={}, "
        "ROI_HEADS.SCORE_THRESH_TEST=0.05 (config default)".format(
            args.min_size, args.max_size, rw, rh, args.score_thresh, args.topk
        ),
        "- sources: `vtest` = OpenCV sample vtest.avi (768x576, 795 frames; N=800 loops it, "
        "5 frames from the start again); `synthetic` = random texture + 5 moving shapes + "
        "per-frame noise, 768x576, generated on the fly",
        "- columns: seconds / ms per frame = wall time of the whole stream (incl. first-output "
        "latency); CPU ms = process CPU time per frame (less sensitive to other jobs); "
        "**peak growth** = `ru_maxrss` at the end − `ru_maxrss` after model build + first frame "
        "output (what grows with the length); **peak over model** = `ru_maxrss` at the end − RSS "
        "after the model was built (the streaming working set); end RSS = RSS at the end; "
        "dets/frame = detections kept per frame (clip tracks); masks/frame = instance masks per "
        "output frame (tracks of neighbouring clips included); IDs = video IDs handed out",
        "",
        "## Time and memory vs video length",
        "",
        "| source | frames | seconds | ms/frame | CPU ms/frame | peak growth MiB "
        "| peak over model MiB | end RSS MiB | dets/frame | masks/frame | IDs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in lengths:
        lines.append(_length_row(r))
    lines += ["", "Checks (fresh process per length):", ""]
    for source in args.sources:
        rs = [r for r in lengths if r["source"] == source]
        if len(rs) < 2:
            continue
        ms = [r["cpu_ms_per_frame"] for r in rs]
        gr = [r["peak_growth_mib"] for r in rs]
        a, b = rs[0], rs[-1]
        lines.append(
            "- {}: CPU ms/frame {:.1f}–{:.1f} (max/min {:.2f}); wall time N={}/N={}: {:.2f}, CPU "
            "time {:.2f}, for a length ratio of {:.2f}; peak growth {:.1f}–{:.1f} MiB "
            "(N={}→{}: {:+.1f} MiB); end RSS {:.0f}–{:.0f} MiB.".format(
                source,
                min(ms),
                max(ms),
                max(ms) / min(ms),
                b["length"],
                a["length"],
                b["seconds"] / a["seconds"],
                b["cpu_ms_per_frame"] * b["length"] / (a["cpu_ms_per_frame"] * a["length"]),
                b["length"] / a["length"],
                min(gr),
                max(gr),
                a["length"],
                b["length"],
                b["peak_growth_mib"] - a["peak_growth_mib"],
                min(r["end_rss_mib"] for r in rs),
                max(r["end_rss_mib"] for r in rs),
            )
        )
    lines += [
        "",
        "## Memory timeline within one run",
        "",
        "Sampled every {} output frames in the longest run of each source{}. Peak growth = "
        "`ru_maxrss` − its value after the first output; heap = glibc's main heap/arenas "
        "(`mallinfo2`): in use, and free but kept by malloc (not returned to the OS); tensors = "
        "tensors reachable by `gc` (count, MiB of their storages); state = features held / "
        "frames with pending track masks / clips stored by the matcher / video IDs.".format(
            args.probe_every, " and of the pre-fix runs" if legacy else ""
        ),
        "",
        "| run | frame | RSS MiB | peak growth MiB | heap in use MiB | heap free kept MiB "
        "| tensors (MiB) | state |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    longest = [
        max((r for r in lengths if r["source"] == s), key=lambda r: r["length"])
        for s in args.sources
    ]
    for r in longest + legacy:
        name = "{} N={}{}".format(
            r["source"], r["length"], " pre-fix" if r["legacy_detect"] else ""
        )
        for row in r["timeline"]:
            lines.append(
                "| {} | {} | {:.0f} | {:.1f} | {} | {} | {} ({:.1f}) | {}/{}/{}/{} |".format(
                    name,
                    row["frame"],
                    row["rss_mib"],
                    row["maxrss_mib"] - r["base_maxrss_mib"],
                    _f(row.get("heap_used_mib"), "{:.0f}"),
                    _f(row.get("heap_free_mib"), "{:.0f}"),
                    row["tensors"],
                    row["tensor_mib"],
                    row["features"],
                    row["pending_frames"],
                    row["stored_clips"],
                    row["video_ids"],
                )
            )
    if legacy:
        lines += [
            "",
            "## Before the fix: mask head on every box detection",
            "",
            "`--legacy-detect`: `detect_frame` as it was, running the whole ROI heads (the mask "
            "head on every box-branch detection above ROI_HEADS.SCORE_THRESH_TEST, up to "
            "TEST.DETECTIONS_PER_IMAGE = 100) and then keeping the top {} above {}; now the mask "
            "head runs on the kept detections only. Same outputs (masks/frame, IDs below).".format(
                args.topk, args.score_thresh
            ),
            "",
            "| source | frames | detect_frame | ms/frame | CPU ms/frame | peak growth MiB "
            "| peak over model MiB | end RSS MiB | masks/frame | IDs |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in legacy:
            same = [x for x in lengths if x["source"] == r["source"] and x["length"] == r["length"]]
            for x, name in [(r, "pre-fix")] + [(y, "fixed") for y in same]:
                lines.append(
                    "| {} | {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.2f} | {} "
                    "|".format(
                        x["source"],
                        x["length"],
                        name,
                        x["ms_per_frame"],
                        x["cpu_ms_per_frame"],
                        x["peak_growth_mib"],
                        x["peak_over_model_mib"],
                        x["end_rss_mib"],
                        x["masks_per_frame"],
                        x["video_ids"],
                    )
                )
    if instances:
        lines += [
            "",
            "## Time and memory vs instances per frame",
            "",
            "`{}`, {} frames, MODEL.MASKPROP.INFERENCE.SCORE_THRESH 0, "
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST 0, TOPK_PER_FRAME N (fresh process each).".format(
                args.instances_source, args.instances_length
            ),
            "",
            "| TOPK_PER_FRAME | dets/frame | masks/frame | seconds | ms/frame | CPU ms/frame "
            "| peak growth MiB | peak over model MiB | end RSS MiB | IDs |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in instances:
            lines.append(
                "| {topk} | {dets_per_frame:.2f} | {masks_per_frame:.2f} | {seconds:.1f} | "
                "{ms_per_frame:.1f} | {cpu_ms_per_frame:.1f} | {peak_growth_mib:.1f} | "
                "{peak_over_model_mib:.1f} | {end_rss_mib:.0f} | {video_ids} |".format(**r)
            )
        if len(instances) >= 2:
            a, b = instances[0], instances[-1]
            dd = b["dets_per_frame"] - a["dets_per_frame"]
            if dd > 0:
                lines += [
                    "",
                    "- from {:.1f} to {:.1f} detections/frame: CPU ms/frame {:+.1f} ({:.1f} ms per "
                    "extra detection), peak over model {:+.1f} MiB ({:.1f} MiB per extra "
                    "detection).".format(
                        a["dets_per_frame"],
                        b["dets_per_frame"],
                        b["cpu_ms_per_frame"] - a["cpu_ms_per_frame"],
                        (b["cpu_ms_per_frame"] - a["cpu_ms_per_frame"]) / dd,
                        b["peak_over_model_mib"] - a["peak_over_model_mib"],
                        (b["peak_over_model_mib"] - a["peak_over_model_mib"]) / dd,
                    ),
                ]
    if plots:
        lines += ["", "## Plots", ""]
        lines += ["![{}]({})".format(os.path.basename(q), os.path.basename(q)) for q in plots if q]
    lines.append("")
    return "\n".join(lines)


def _length_row(r):
    return (
        "| {source} | {length} | {seconds:.1f} | {ms_per_frame:.1f} | {cpu_ms_per_frame:.1f} | "
        "{peak_growth_mib:.1f} | {peak_over_model_mib:.1f} | {end_rss_mib:.0f} | "
        "{dets_per_frame:.2f} | {masks_per_frame:.2f} | {video_ids} |".format(**r)
    )


def _resized(min_size, max_size, w=W, h=H):
    scale = min_size / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return int(w * scale + 0.5), int(h * scale + 0.5)


# ----------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lengths(args, lengths, legacy, path):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4))
    colors = {}
    for i, s in enumerate(args.sources):
        colors[s] = "C{}".format(i)
    ax = axes[0]
    for s in args.sources:
        rs = sorted((r for r in lengths if r["source"] == s), key=lambda r: r["length"])
        x = [r["length"] for r in rs]
        ax.plot(x, [r["ms_per_frame"] for r in rs], "o-", color=colors[s], label=s + " wall")
        ax.plot(x, [r["cpu_ms_per_frame"] for r in rs], "s--", color=colors[s], label=s + " CPU")
    for r in legacy:
        ax.plot(
            [r["length"]],
            [r["cpu_ms_per_frame"]],
            "x",
            ms=9,
            color=colors.get(r["source"]),
            label=r["source"] + " CPU, pre-fix",
        )
    ax.set_xlabel("video length (frames)")
    ax.set_ylabel("ms / frame")
    ax.set_ylim(bottom=0)
    ax.set_title("time per frame vs length")
    ax.legend(fontsize=8)
    ax = axes[1]
    for s in args.sources:
        rs = sorted((r for r in lengths if r["source"] == s), key=lambda r: r["length"])
        x = [r["length"] for r in rs]
        ax.plot(x, [r["peak_growth_mib"] for r in rs], "o-", color=colors[s], label=s)
    for r in legacy:
        tl = [row for row in r["timeline"] if row["frame"] > 1]
        ax.plot(
            [row["frame"] for row in tl],
            [row["maxrss_mib"] - r["base_maxrss_mib"] for row in tl],
            "x:",
            color=colors.get(r["source"]),
            label=r["source"] + " pre-fix (one run)",
        )
    ax.set_xlabel("video length (frames)")
    ax.set_ylabel("peak RSS growth after 1st output (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("peak RSS growth vs length")
    ax.legend(fontsize=8)
    ax = axes[2]
    for s in args.sources:
        r = max((r for r in lengths if r["source"] == s), key=lambda r: r["length"])
        tl = r["timeline"]
        ax.plot(
            [row["frame"] for row in tl],
            [row["rss_mib"] for row in tl],
            "o-",
            color=colors[s],
            label="{} N={} RSS".format(s, r["length"]),
        )
        if "heap_free_mib" in tl[0]:
            ax.plot(
                [row["frame"] for row in tl],
                [row["heap_free_mib"] for row in tl],
                "o--",
                color=colors[s],
                alpha=0.6,
                label=s + " heap free kept",
            )
    for r in legacy:
        tl = r["timeline"]
        ax.plot(
            [row["frame"] for row in tl],
            [row["rss_mib"] for row in tl],
            "x:",
            color=colors.get(r["source"]),
            label=r["source"] + " pre-fix RSS",
        )
        if "heap_free_mib" in tl[0]:
            ax.plot(
                [row["frame"] for row in tl],
                [row["heap_free_mib"] for row in tl],
                "+:",
                color=colors.get(r["source"]),
                alpha=0.6,
                label=r["source"] + " pre-fix heap free kept",
            )
    ax.set_xlabel("frames streamed")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("RSS and glibc free heap within a run")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_instances(args, instances, path):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    x = [r["dets_per_frame"] for r in instances]
    ax = axes[0]
    ax.plot(x, [r["ms_per_frame"] for r in instances], "o-", label="wall")
    ax.plot(x, [r["cpu_ms_per_frame"] for r in instances], "s--", label="CPU")
    ax.set_xlabel("detections per frame (TOPK_PER_FRAME, thresholds 0)")
    ax.set_ylabel("ms / frame")
    ax.set_ylim(bottom=0)
    ax.set_title(
        "time per frame vs instances ({}, {} frames)".format(
            args.instances_source, args.instances_length
        )
    )
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(x, [r["peak_over_model_mib"] for r in instances], "o-", label="peak over model")
    ax.plot(x, [r["peak_growth_mib"] for r in instances], "s--", label="peak growth after 1st")
    ax.set_xlabel("detections per frame")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("peak RSS vs instances")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
