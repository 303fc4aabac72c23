#!/usr/bin/env python
"""GPU validation in one command: tests, CUDA/CPU parity, AMP training, streaming speed.

On a machine with a CUDA GPU (sized to finish within 8 minutes on one current GPU; the report
says whether it did)::

    python tools/gpu_check.py [--video vtest.avi] [--out benchmarks/gpu_check.md]

1. **Test suite** with CUDA visible (``python -m pytest tests -q``): pass/fail counts and time.
2. **Propagation head parity**: the head's outputs (propagated masks, offset branch) and its
   gradients (every parameter, the input features, the offsets) in float32 on the device against
   a float64 CPU reference, full-frame and ROI mode, with random offsets away from pixel
   boundaries (``head_inputs``); TF32 is turned off for the comparison. Fails beyond
   ``atol + rtol * max|reference|``.
3. **AMP training**: the R50-FPN config (``configs/YouTubeVIS-2019/maskprop_R50_FPN.yaml``, random
   init: no weights can be downloaded, BatchNorm instead of FrozenBN for that reason) on a
   synthetic dataset generated at 360p (640x360), for ``--iters`` iterations each under
   ``torch.autocast`` with float16 (with a GradScaler) and bfloat16: iterations/s after
   ``--warmup`` iterations, whether every loss was finite, peak GPU memory.
4. **Streaming inference** on OpenCV's ``vtest.avi`` resized to 360p (480x360): frames/s of
   MaskProp (``MaskPropTracker``: one backbone pass per frame, 2T+1 frame clips, ID assignment,
   emitted masks RLE-encoded) and of per-frame Mask R-CNN with the same model and backbone
   (detection, masks pasted at frame size, RLE-encoded), their ratio, peak GPU memory. Weights
   are random; for a fixed, realistic number of detections the RPN box deltas and the box
   regressor are zeroed (proposals are anchors) and every frame keeps ``--detections`` of them.
   Without the video (``apt-get install opencv-doc`` ships it), generated frames are used and the
   report says so.
5. **Two-process DDP** training (``train_net.py --num-gpus 2``, AMP) when there are two GPUs.

Writes a markdown report (``--out``, default ``benchmarks/gpu_check_<gpu>.md``) and exits non-zero
if any check failed.

Without a GPU, ``--device cpu --quick`` runs the same code on the CPU with tiny sizes (the tiny
synthetic config, bfloat16 autocast only, a few frames): what the test suite checks.
"""

import argparse
import datetime
import glob
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R50_CONFIG = os.path.join(REPO, "configs", "YouTubeVIS-2019", "maskprop_R50_FPN.yaml")
TINY_CONFIG = os.path.join(REPO, "configs", "synthetic", "maskprop_tiny.yaml")
VTEST_CANDIDATES = [
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "/usr/share/opencv4/samples/data/vtest.avi",
    os.path.join(REPO, "datasets", "vtest.avi"),
    "/tmp/vtest.avi",
]


# ----------------------------------------------------------------------------- helpers
def log(msg):
    print("[gpu_check] " + msg, flush=True)


def sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def reset_peak(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device):
    """Peak GPU memory allocated by tensors since the last reset (MiB); None on CPU."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def failed_stage(what, **fields):
    """A stage that raised: logged with its traceback and reported as FAIL, so that the other
    checks still run and the report is still written."""
    import traceback

    tb = traceback.format_exc()
    log("{} raised:\n{}".format(what, tb))
    return dict(fields, error=tb[-2000:], ok=False)


# ----------------------------------------------------------------------------- 1. test suite
def run_test_suite(extra_args=()):
    """``python -m pytest tests -q`` in a subprocess (CUDA visible): counts, time, output tail."""
    # -rfE: pytest's short summary names every failed test and every error
    cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-rfE", "-p", "no:cacheprovider"]
    cmd += list(extra_args)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    counts = parse_pytest_summary(proc.stdout)
    failures = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    return {
        "command": " ".join(cmd[1:]),
        "returncode": proc.returncode,
        "seconds": seconds,
        "counts": counts,
        "failures": failures,
        "tail": (proc.stdout + proc.stderr)[-3000:],
        "ok": proc.returncode == 0,
    }


def parse_pytest_summary(text):
    """{"passed": n, "failed": n, ...} from pytest's closing line."""
    counts = {}
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        found = re.findall(
            r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)", line
        )
        if found:
            for n, what in found:
                counts["errors" if what.startswith("error") else what] = int(n)
            break
    return counts


# ----------------------------------------------------------------------------- 2. parity
ROI_SIZE = 16  # ROI-mode window; source boxes are at most this big, margin 0 (see head_inputs)


def make_head(roi_size, in_channels=16, conv_dim=16, seed=0):
    """A propagation head with random weights everywhere (its offset conv starts at zero)."""
    import torch

    from maskprop_d2.modeling.propagation import MaskPropagationHead

    torch.manual_seed(seed)
    head = MaskPropagationHead(
        in_channels=in_channels,
        conv_dim=conv_dim,
        kernel_size=3,
        num_res_blocks=1,
        roi_size=roi_size,
        roi_margin=0.0,
    )
    with torch.no_grad():
        head.offset_conv.weight.normal_(std=0.3)
        head.offset_conv.bias.normal_(std=1.3)
        head.predictor.weight.normal_(std=0.5)
        head.attention_conv.weight.normal_(std=0.5)
    return head


def head_inputs(pairs, instances, h, w, channels=16, seed=1):
    """float64 (features (P+1, C, H, W), masks (N, H, W), pair_index (N,), offsets (P, 18, H, W)).

    Masks are filled boxes of at most ``ROI_SIZE`` pixels a side, so that with margin 0 (and
    frames at least ``ROI_SIZE`` a side) every ROI window is exactly ``ROI_SIZE`` wide and the
    window crop copies the offsets unscaled.
    Offsets are random with fractional parts in [0.25, 0.75]: bilinear sampling is continuous in
    the sampling position but its derivative jumps where a sample crosses a pixel, and float32 and
    float64 would put a sample lying within rounding of a pixel boundary on different sides.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(pairs + 1, channels, h, w, generator=g, dtype=torch.float64)
    masks = torch.zeros(instances, h, w, dtype=torch.float64)
    for i in range(instances):
        bw = int(torch.randint(2, max(3, min(ROI_SIZE, w // 2) + 1), (1,), generator=g))
        bh = int(torch.randint(2, max(3, min(ROI_SIZE, h // 2) + 1), (1,), generator=g))
        x0 = int(torch.randint(0, w - bw + 1, (1,), generator=g))
        y0 = int(torch.randint(0, h - bh + 1, (1,), generator=g))
        masks[i, y0 : y0 + bh, x0 : x0 + bw] = 1.0
    pair_index = torch.randint(0, pairs, (instances,), generator=g)
    shape = (pairs, 18, h, w)
    whole = torch.randint(-2, 3, shape, generator=g).double()
    offsets = whole + 0.25 + 0.5 * torch.rand(shape, generator=g, dtype=torch.float64)
    return feats, masks, pair_index, offsets


def head_outputs(head, feats, masks, pair_index, offsets, device, dtype):
    """Outputs and gradients of ``head`` in ``dtype`` on ``device``.

    Propagation runs with the given ``offsets``; the offset branch (residual block + offset conv,
    plain convolutions) runs on its own on the same features. A fixed random weighting of both
    outputs is back-propagated, so every output element matters to the gradients: of every
    parameter, the input features and the offsets.
    """
    import copy

    import torch

    head = copy.deepcopy(head).to(device=device, dtype=dtype)

    def leaf(t):
        return t.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)

    f, off = leaf(feats), leaf(offsets)
    red = head.reduce(f)
    m = masks.to(device=device, dtype=dtype)
    out = head(red[:-1], red[1:], m, pair_index.to(device), offsets=off)
    branch = head.offsets(red[:-1], red[1:])
    g = torch.Generator().manual_seed(7)
    w_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    w_br = torch.randn(branch.shape, generator=g, dtype=torch.float64).to(
        device=device, dtype=dtype
    )
    ((out * w_out).sum() + (branch * w_br).sum()).backward()
    grads = {"input features": f.grad, "offsets": off.grad}
    grads.update({name: p.grad for name, p in head.named_parameters()})
    return {"propagated masks": out.detach(), "offset branch": branch.detach()}, grads


def compare(ref, cand, rtol, atol):
    """max |cand - ref|, the allowed error ``atol + rtol * max|ref|``, and whether it is within."""
    ref = ref.detach().double().cpu()
    cand = cand.detach().double().cpu()
    err = (cand - ref).abs().max().item() if ref.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    allowed = atol + rtol * scale
    return {
        "max_abs_err": err,
        "allowed": allowed,
        "ok": bool(err <= allowed and math.isfinite(err)),
    }


def prop_head_parity(device, sizes, rtol=1e-4, atol=1e-5, candidate_head=None):
    """Device float32 against the CPU float64 reference, full-frame and ROI mode.

    ``sizes``: [(pairs, instances, h, w)]. ``candidate_head(roi_size)`` can replace the head run on
    the device (the tests use it to check that a wrong head fails).
    """
    import torch

    rows = []
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        for roi_size in (0, ROI_SIZE):
            for pairs, instances, h, w in sizes:
                head = make_head(roi_size)
                cand = candidate_head(roi_size) if candidate_head else head
                inputs = head_inputs(pairs, instances, h, w)
                ref_outs, ref_grads = head_outputs(head, *inputs, "cpu", torch.float64)
                outs, grads = head_outputs(cand, *inputs, device, torch.float32)
                fwd = {k: compare(v, outs[k], rtol, atol) for k, v in ref_outs.items()}
                checks = {}
                for name, ref_g in ref_grads.items():
                    if ref_g is None and grads[name] is None:
                        continue  # a parameter this mode does not use
                    if ref_g is None or grads[name] is None:
                        checks[name] = {"max_abs_err": float("inf"), "allowed": 0.0, "ok": False}
                        continue
                    checks[name] = compare(ref_g, grads[name], rtol, atol)

                def worst(d):
                    return max(d.items(), key=lambda kv: kv[1]["max_abs_err"] / kv[1]["allowed"])

                wf, wg = worst(fwd), worst(checks)
                rows.append(
                    {
                        "mode": "ROI {}".format(roi_size) if roi_size else "full frame",
                        "shape": "P={} N={} {}x{}".format(pairs, instances, h, w),
                        "worst_output": wf[0],
                        "forward_err": wf[1]["max_abs_err"],
                        "forward_allowed": wf[1]["allowed"],
                        "worst_grad": wg[0],
                        "worst_grad_err": wg[1]["max_abs_err"],
                        "worst_grad_allowed": wg[1]["allowed"],
                        "ok": all(c["ok"] for c in list(fwd.values()) + list(checks.values())),
                    }
                )
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return {"rows": rows, "rtol": rtol, "atol": atol, "ok": all(r["ok"] for r in rows)}


# ----------------------------------------------------------------------------- 3. training
def make_synthetic(root, num_videos, length, height, width):
    """Generate (once) and register a synthetic dataset; returns its train split's name."""
    from maskprop_d2.data import register_synthetic_ytvis
    from maskprop_d2.data.synthetic import ensure_synthetic_dataset

    ensure_synthetic_dataset(
        root, num_train=num_videos, num_val=1, length=length, height=height, width=width, seed=0
    )
    prefix = "gpu_check_{}x{}".format(width, height)
    return register_synthetic_ytvis(root, prefix=prefix)[0]


def train_cfg(config_file, device, dataset, min_size, max_size, batch, workers, extra=()):
    from maskprop_d2 import get_maskprop_cfg

    cfg = get_maskprop_cfg(config_file)
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            str(device),
            "MODEL.WEIGHTS",
            "",  # nothing can be downloaded: random init
            "MODEL.ROI_HEADS.NUM_CLASSES",
            5,  # the synthetic classes
            "DATASETS.TRAIN",
            (dataset,),
            "DATASETS.TEST",
            (),
            "INPUT.MIN_SIZE_TRAIN",
            (min_size,),
            "INPUT.MAX_SIZE_TRAIN",
            max_size,
            "INPUT.MIN_SIZE_TEST",
            min_size,
            "INPUT.MAX_SIZE_TEST",
            max_size,
            "SOLVER.IMS_PER_BATCH",
            batch,
            "DATALOADER.NUM_WORKERS",
            workers,
        ]
        + list(extra)
    )
    return cfg


def train_amp(cfg, dtype, iters, warmup, seed=0):
    """``iters`` training iterations under ``torch.autocast(dtype)`` (+ GradScaler for float16 on
    CUDA): iterations/s over the iterations after ``warmup``, loss finiteness, peak memory."""
    import torch
    from detectron2.modeling import build_model
    from detectron2.solver import build_lr_scheduler
    from detectron2.utils.events import EventStorage

    from maskprop_d2.data import build_clip_train_loader
    from maskprop_d2.solver import build_optimizer

    device = torch.device(cfg.MODEL.DEVICE)
    torch.manual_seed(seed)
    model = build_model(cfg)
    model.train()
    opt = build_optimizer(cfg, model)
    sched = build_lr_scheduler(cfg, opt)  # the config's warm-up, as train_net.py trains
    use_scaler = dtype == torch.float16 and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    data = iter(build_clip_train_loader(cfg))
    nonfinite, last, first = 0, None, None
    reset_peak(device)
    t_start = None
    with EventStorage(0) as storage:
        for i in range(iters):
            if i == warmup:
                sync(device)
                t_start = time.perf_counter()
            storage.iter = i
            batch = next(data)
            with torch.autocast(device.type, dtype=dtype):
                losses = model(batch)
            total = sum(losses.values())
            values = {k: float(v.detach().float()) for k, v in losses.items()}
            if not all(math.isfinite(v) for v in values.values()):
                nonfinite += 1
            if first is None:
                first = values
            last = values
            opt.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
        sync(device)
    timed = iters - warmup
    seconds = time.perf_counter() - t_start if t_start is not None else float("nan")
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "iters": iters,
        "warmup": warmup,
        "it_per_s": timed / seconds if timed > 0 else float("nan"),
        "nonfinite_iters": nonfinite,
        "first_losses": first,
        "last_losses": last,
        "peak_mib": peak_mib(device),
        "scaler": use_scaler,
        "ok": nonfinite == 0,
    }


# ----------------------------------------------------------------------------- 4. inference
def find_video(path=None):
    for p in ([path] if path else []) + VTEST_CANDIDATES:
        if p and os.path.isfile(p):
            return p
    hits = glob.glob("/usr/share/doc/opencv*/**/vtest.avi", recursive=True)
    return hits[0] if hits else None


def video_frames(path, n, width, height):
    """``n`` BGR frames of ``path`` resized to (width, height), looping past its end."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_common import read_video_frames

    return read_video_frames(path, n, (width, height))[0]


def generated_frames(n, width, height, seed=0):
    """``n`` BGR frames: smooth random texture with a few moving discs (no video file needed)."""
    import cv2
    import numpy as np

    rng = np.random.RandomState(seed)
    bg = cv2.resize(
        rng.randint(0, 255, (height // 8, width // 8, 3)).astype(np.uint8), (width, height)
    )
    frames = []
    for t in range(n):
        f = bg.copy()
        for k in range(4):
            x = int((0.1 + 0.2 * k) * width + 2 * t) % width
            y = int((0.3 + 0.1 * k) * height)
            cv2.circle(f, (x, y), max(4, height // 12), (40 * k, 200, 255 - 40 * k), -1)
        frames.append(f)
    return frames


def fixed_detections(model, seed=0):
    """Random weights that give realistic boxes: RPN deltas and box regressor zeroed (proposals
    are anchors), random class bias (scores differ by class, same for every box)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    pred = model.roi_heads.box_predictor
    with torch.no_grad():
        for layer in (model.proposal_generator.rpn_head.anchor_deltas, pred.bbox_pred):
            layer.weight.zero_()
            layer.bias.zero_()
        pred.cls_score.weight.zero_()
        pred.cls_score.bias.copy_(torch.randn(pred.cls_score.bias.shape, generator=g))


def inference_cfg(config_file, device, height, width, detections, extra=()):
    from maskprop_d2 import get_maskprop_cfg

    cfg = get_maskprop_cfg(config_file)
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            str(device),
            "MODEL.WEIGHTS",
            "",
            "INPUT.MIN_SIZE_TEST",
            min(height, width),
            "INPUT.MAX_SIZE_TEST",
            max(height, width),
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            0.0,
            "MODEL.MASKPROP.INFERENCE.SCORE_THRESH",
            0.0,
            "MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME",
            detections,
        ]
        + list(extra)
    )
    return cfg


def stream_speed(cfg, frames, warmup):
    """frames/s of MaskProp streaming and of per-frame Mask R-CNN, same model; peak memory."""
    import numpy as np
    import torch
    from detectron2.modeling import build_model

    from maskprop_d2.inference import encode_frame_masks
    from maskprop_d2.modeling.mask_ops import paste_at_output_size
    from maskprop_d2.tracking import FrameOutput, MaskPropTracker

    device = torch.device(cfg.MODEL.DEVICE)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.eval()
    fixed_detections(model)
    c = cfg.MODEL.MASKPROP.INFERENCE
    h, w = frames[0].shape[:2]

    def inputs(frames_):
        for f in frames_:  # BGR, already at the network's input size (no resize)
            img = f if cfg.INPUT.FORMAT == "BGR" else f[:, :, ::-1]
            img = torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))
            yield {"image": img, "height": h, "width": w}

    def maskrcnn_frame(k, frame):
        _, _, inst, probs = model.detect_frame(frame, c.SCORE_THRESH, c.TOPK_PER_FRAME)
        masks = paste_at_output_size(probs, inst.pred_boxes.tensor, (h, w), (h, w))
        encode_frame_masks(FrameOutput(k, torch.arange(len(inst)), masks > c.MASK_THRESH))
        return len(inst)

    res = {"frames": len(frames), "warmup": warmup, "size": "{}x{}".format(w, h)}

    def run_maskrcnn(frames_):
        return [maskrcnn_frame(k, f) for k, f in enumerate(inputs(frames_))]

    def run_maskprop(frames_):
        vi = MaskPropTracker(cfg, model)
        n_out = 0
        for out in vi.stream(inputs(frames_)):
            encode_frame_masks(out)
            n_out += 1
        return n_out, len(vi.video_instances())

    with torch.no_grad():
        # warm-up (kernels, allocator, cudnn autotuning) on the first frames, not timed
        run_maskrcnn(frames[:warmup])
        run_maskprop(frames[:warmup])
        # per-frame Mask R-CNN over the whole video
        reset_peak(device)
        sync(device)
        t0 = time.perf_counter()
        dets = run_maskrcnn(frames)
        sync(device)
        res["maskrcnn_fps"] = len(frames) / (time.perf_counter() - t0)
        res["maskrcnn_peak_mib"] = peak_mib(device)
        res["detections_per_frame"] = float(np.mean(dets))
        # MaskProp over the whole video: stream start to the last emitted frame (frame k's output
        # comes once frame k + T is read; the last T come when the stream ends)
        reset_peak(device)
        sync(device)
        t0 = time.perf_counter()
        n_out, res["video_ids"] = run_maskprop(frames)
        sync(device)
        res["maskprop_fps"] = n_out / (time.perf_counter() - t0)
        res["maskprop_peak_mib"] = peak_mib(device)
    res["ratio"] = res["maskprop_fps"] / res["maskrcnn_fps"]
    res["ok"] = n_out == len(frames) and res["maskprop_fps"] > 0 and res["maskrcnn_fps"] > 0
    return res


# ----------------------------------------------------------------------------- 5. DDP
def ddp_train(synthetic_root, config_file, iters, out_dir):
    """``train_net.py --num-gpus 2`` for ``iters`` iterations with AMP; pass/fail and time."""
    cmd = [
        sys.executable,
        os.path.join(REPO, "train_net.py"),
        "--num-gpus",
        "2",
        "--config-file",
        config_file,
        "MODEL.WEIGHTS",
        "",
        "MODEL.DEVICE",
        "cuda",
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "5",
        "MODEL.RESNETS.NORM",
        "BN",
        "MODEL.FPN.NORM",
        "",
        "DATASETS.TRAIN",
        "('synthetic_ytvis_train',)",
        "DATASETS.TEST",
        "()",
        "INPUT.MIN_SIZE_TRAIN",
        "(360,)",
        "INPUT.MAX_SIZE_TRAIN",
        "640",
        "SOLVER.IMS_PER_BATCH",
        "8",
        "SOLVER.MAX_ITER",
        str(iters),
        "SOLVER.STEPS",
        "()",
        "SOLVER.AMP.ENABLED",
        "True",
        "SOLVER.CHECKPOINT_PERIOD",
        "100000",
        "DATALOADER.NUM_WORKERS",
        "4",
        "OUTPUT_DIR",
        out_dir,
    ]
    env = dict(os.environ, MASKPROP_SYNTHETIC_ROOT=synthetic_root)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    return {
        "command": " ".join(cmd[1:3]) + " ...",
        "seconds": time.perf_counter() - t0,
        "returncode": proc.returncode,
        "tail": (proc.stdout + proc.stderr)[-2000:],
        "ok": proc.returncode == 0,
    }


# ----------------------------------------------------------------------------- report
def environment(device):
    import numpy
    import PIL
    import torch
    import torchvision

    try:
        import detectron2

        d2 = detectron2.__version__
    except Exception as e:  # reported, not fatal
        d2 = "not importable ({})".format(e)
    env = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "detectron2": d2,
        "numpy": numpy.__version__,
        "Pillow": PIL.__version__,
        "device": str(device),
    }
    if str(device).startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpus"] = torch.cuda.device_count()
        env["cuda"] = torch.version.cuda
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def render_stream(s, half_length, ok):
    """The streaming section's lines (below its title)."""
    lines = []
    lines.append(
        "{} frames at {} (after {} warm-up frames), {:.1f} detections per frame, random weights "
        "(fixed detections).".format(s["frames"], s["size"], s["warmup"], s["detections_per_frame"])
    )
    lines.append("")
    lines.append("| | frames/s | peak GPU MiB |\n|---|---|---|")
    lines.append(
        "| MaskProp (streaming, T = {}) | {:.2f} | {} |".format(
            half_length, s["maskprop_fps"], fmt(s["maskprop_peak_mib"], ".0f")
        )
    )
    lines.append(
        "| per-frame Mask R-CNN, same backbone | {:.2f} | {} |".format(
            s["maskrcnn_fps"], fmt(s["maskrcnn_peak_mib"], ".0f")
        )
    )
    lines.append("")
    lines.append(
        "**MaskProp / Mask R-CNN speed ratio: {:.2f}** ({})".format(s["ratio"], ok(s["ok"]))
    )
    lines.append("")
    return lines


def render_report(r):
    ok = lambda x: "PASS" if x else "FAIL"  # noqa: E731
    lines = ["# GPU check: {}".format(r["env"].get("gpu", r["env"]["device"])), ""]
    lines.append("`{}` — {}".format(r["command"], r["env"]["date"]))
    lines.append("")
    lines.append(
        "**Overall: {}** in {:.0f} s{}.".format(
            ok(r["ok"]),
            r["seconds"],
            " (quick mode: tiny sizes, not a benchmark)"
            if r["quick"]
            else " ({} the 8-minute target)".format("within" if r["seconds"] <= 480 else "OVER"),
        )
    )
    lines.append("")
    lines.append("| | |\n|---|---|")
    for k, v in r["env"].items():
        lines.append("| {} | {} |".format(k, v))
    lines.append("")
    t = r.get("tests")
    lines.append("## 1. Test suite")
    if t is None:
        lines.append("skipped (--skip-tests)")
    else:
        counts = ", ".join("{} {}".format(v, k) for k, v in t["counts"].items()) or "no summary"
        lines.append(
            "{}: `{}` — {} in {:.0f} s".format(ok(t["ok"]), t["command"], counts, t["seconds"])
        )
        if not t["ok"]:
            lines += [""] + ["* `{}`".format(ln) for ln in t.get("failures", [])]
            lines += ["", "```", t["tail"], "```"]
    lines.append("")
    p = r["parity"]
    lines.append("## 2. Propagation head: {} float32 vs CPU float64".format(r["env"]["device"]))
    lines.append("")
    lines.append(
        "TF32 off. Outputs (propagated masks, offset branch) and gradients (every parameter, the "
        "input features, the offsets): max abs error, allowed {} + {} × max|reference|. Offsets "
        "are given, with fractional parts in [0.25, 0.75] (see `head_inputs`).".format(
            p["atol"], p["rtol"]
        )
    )
    lines.append("")
    lines.append(
        "| mode | shape | worst output | max err (allowed) | worst gradient | max err (allowed) | |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for row in p["rows"]:
        lines.append(
            "| {} | {} | {} | {:.2e} ({:.1e}) | {} | {:.2e} ({:.1e}) | {} |".format(
                row["mode"],
                row["shape"],
                row["worst_output"],
                row["forward_err"],
                row["forward_allowed"],
                row["worst_grad"],
                row["worst_grad_err"],
                row["worst_grad_allowed"],
                ok(row["ok"]),
            )
        )
    lines.append("")
    lines.append("## 3. AMP training ({})".format(r["train_desc"]))
    lines.append("")
    lines.append(
        "| autocast dtype | GradScaler | iterations (warm-up) | it/s | non-finite iterations "
        "| total loss first → last | peak GPU MiB | |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    errors = []
    for tr in r["train"]:
        if "error" in tr:
            lines.append("| {} | | | | | raised (below) | | FAIL |".format(tr["dtype"]))
            errors += ["", "autocast({}):".format(tr["dtype"]), "```", tr["error"], "```"]
            continue
        first = sum(tr["first_losses"].values()) if tr["first_losses"] else float("nan")
        last = sum(tr["last_losses"].values()) if tr["last_losses"] else float("nan")
        lines.append(
            "| {} | {} | {} ({}) | {:.2f} | {} | {:.3f} → {:.3f} | {} | {} |".format(
                tr["dtype"],
                "yes" if tr["scaler"] else "no",
                tr["iters"],
                tr["warmup"],
                tr["it_per_s"],
                tr["nonfinite_iters"],
                first,
                last,
                fmt(tr["peak_mib"], ".0f"),
                ok(tr["ok"]),
            )
        )
    lines += errors
    lines.append("")
    s = r["stream"]
    lines.append("## 4. Streaming inference ({})".format(r["video_desc"]))
    lines.append("")
    if "error" in s:
        lines += ["FAIL: raised", "", "```", s["error"], "```", ""]
    else:
        lines += render_stream(s, r["half_length"], ok)
    d = r.get("ddp")
    lines.append("## 5. Two-process DDP")
    if d is None:
        lines.append("skipped: {}".format(r.get("ddp_skip", "fewer than two GPUs")))
    else:
        lines.append("{}: `{}` in {:.0f} s".format(ok(d["ok"]), d["command"], d["seconds"]))
        if not d["ok"]:
            lines += ["", "```", d["tail"], "```"]
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CPU test of the script)")
    p.add_argument("--skip-tests", action="store_true", help="do not run the test suite")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments (one string)")
    p.add_argument("--iters", type=int, default=None, help="training iterations per dtype (300)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations/frames (20)")
    p.add_argument("--frames", type=int, default=None, help="frames streamed (200)")
    p.add_argument("--detections", type=int, default=5, help="detections per frame (5)")
    p.add_argument("--batch", type=int, default=None, help="clips per training batch (4)")
    p.add_argument(
        "--lr", type=float, default=2e-4, help="AdamW learning rate after warm-up (2e-4)"
    )
    p.add_argument("--workers", type=int, default=None, help="data loader workers (6)")
    p.add_argument("--video", default=None, help="vtest.avi (default: OpenCV's sample if found)")
    p.add_argument("--data", default=None, help="synthetic dataset folder (default: a temp dir)")
    p.add_argument(
        "--out", default=None, help="markdown report (default benchmarks/gpu_check_*.md)"
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "error: --device {} but CUDA is not available (use --device cpu --quick to test "
            "the script)".format(args.device),
            file=sys.stderr,
        )
        return 2
    quick = args.quick
    iters = args.iters or (3 if quick else 300)
    warmup = args.warmup if args.warmup is not None else (1 if quick else 20)
    n_frames = args.frames or (6 if quick else 200)
    batch = args.batch or (1 if quick else 4)
    workers = args.workers if args.workers is not None else (0 if quick else 6)
    if quick:
        config, (height, width) = TINY_CONFIG, (64, 96)
        dtypes = [torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
        parity_sizes = [(2, 3, 17, 21), (3, 5, 20, 28)]  # ROI mode: frames >= ROI_SIZE
        model_extra = []
    else:
        config, (height, width) = R50_CONFIG, (360, 640)
        dtypes = [torch.float16, torch.bfloat16]
        parity_sizes = [(3, 5, 23, 40), (12, 20, 90, 160)]
        # random init: BatchNorm trains (FrozenBN would keep the random stem's statistics fixed)
        model_extra = ["MODEL.RESNETS.NORM", "BN"]
    # The configs' SGD at BASE_LR 0.02 is meant for a pretrained backbone and 16 clips a batch;
    # from random init it diverges within a few dozen iterations. Train as the from-scratch
    # synthetic config does: AdamW with a linear warm-up, gradients clipped per parameter.
    train_extra = model_extra + [
        "SOLVER.OPTIMIZER", "ADAMW",
        "SOLVER.BASE_LR", args.lr,
        "SOLVER.WEIGHT_DECAY", 0.05,
        "SOLVER.WARMUP_ITERS", max(1, min(100, iters // 3)),
        "SOLVER.MAX_ITER", iters,
        "SOLVER.STEPS", (),
        "SOLVER.CLIP_GRADIENTS.ENABLED", True,
        "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", 1.0,
    ]  # fmt: skip
    t_all = time.perf_counter()
    report = {
        "command": "python tools/gpu_check.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "env": environment(device),
        "quick": quick,
    }

    if args.skip_tests:
        report["tests"] = None
    else:
        log("running the test suite")
        report["tests"] = run_test_suite(args.pytest_args.split())
        log("tests: {} ({:.0f} s)".format(report["tests"]["counts"], report["tests"]["seconds"]))
        for line in report["tests"]["failures"]:  # in the log too, should a later stage hang
            log("  " + line)

    log("propagation head parity")
    report["parity"] = prop_head_parity(device, parity_sizes)
    log("parity ok: {}".format(report["parity"]["ok"]))

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        data_root = args.data or os.path.join(tmp, "synthetic")
        n_videos = 4 if quick else 16
        log("synthetic data {}x{} in {}".format(width, height, data_root))
        dataset = make_synthetic(data_root, n_videos, 8 if quick else 24, height, width)
        report["train"] = []
        for dtype in dtypes:
            cfg = train_cfg(config, device, dataset, height, width, batch, workers, train_extra)
            log("training {} iterations under autocast({})".format(iters, dtype))
            try:
                res = train_amp(cfg, dtype, iters, warmup)
            except Exception:
                res = failed_stage(
                    "training under autocast({})".format(dtype),
                    dtype=str(dtype).replace("torch.", ""),
                )
            else:
                log(
                    "  {:.2f} it/s, non-finite iterations: {}".format(
                        res["it_per_s"], res["nonfinite_iters"]
                    )
                )
            report["train"].append(res)
        report["train_desc"] = (
            "{} on synthetic {}x{}, {} clips of {} frames per batch; {} lr {:g}, "
            "{}-iteration warm-up, gradient norm clipped at {:g} per parameter".format(
                os.path.relpath(config, REPO),
                width,
                height,
                batch,
                cfg.INPUT.CLIP.NUM_SAMPLED_FRAMES + 1,
                cfg.SOLVER.OPTIMIZER,
                cfg.SOLVER.BASE_LR,
                cfg.SOLVER.WARMUP_ITERS,
                cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE,
            )
        )

        vh, vw = (height, height * 4 // 3)
        video = find_video(args.video)
        if video:
            frames = video_frames(video, n_frames, vw, vh)
            report["video_desc"] = "{}, resized to {}x{}".format(os.path.basename(video), vw, vh)
        else:
            frames = generated_frames(n_frames, vw, vh)
            report["video_desc"] = "vtest.avi not found: generated frames {}x{}".format(vw, vh)
        cfg = inference_cfg(config, device, vh, vw, args.detections, model_extra)
        report["half_length"] = cfg.INPUT.CLIP.HALF_LENGTH
        log("streaming inference, {} frames".format(len(frames)))
        try:
            report["stream"] = stream_speed(cfg, frames, max(1, min(warmup, len(frames) - 1)))
        except Exception:
            report["stream"] = failed_stage("streaming inference")
        else:
            log(
                "  MaskProp {:.2f} fps, Mask R-CNN {:.2f} fps".format(
                    report["stream"]["maskprop_fps"], report["stream"]["maskrcnn_fps"]
                )
            )

        if device.type == "cuda" and torch.cuda.device_count() >= 2:
            log("two-process DDP training")
            report["ddp"] = ddp_train(data_root, config, 20, os.path.join(tmp, "ddp"))
        else:
            report["ddp"] = None
            report["ddp_skip"] = "needs two CUDA GPUs (this machine: {})".format(
                torch.cuda.device_count() if torch.cuda.is_available() else 0
            )

    report["seconds"] = time.perf_counter() - t_all
    parts = [report["parity"], report["stream"]] + report["train"]
    parts += [p for p in (report["tests"], report["ddp"]) if p is not None]
    report["ok"] = all(p["ok"] for p in parts)
    out = args.out
    if out is None:
        name = report["env"].get("gpu", "cpu").lower()
        out = os.path.join(
            REPO,
            "benchmarks",
            "gpu_check_{}.md".format(re.sub(r"[^a-z0-9]+", "_", name).strip("_")),
        )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(render_report(report))
    log(
        "{} in {:.0f} s; report: {}".format(
            "PASS" if report["ok"] else "FAIL", report["seconds"], out
        )
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    import warnings

    if not sys.warnoptions:  # the known detectron2 v0.6 / fvcore warnings (see train_net.py)
        for _cat, _msg, _mod in (
            (FutureWarning, r"`torch\.jit\.script` is deprecated", r"torch\.jit\._script"),
            (UserWarning, r"torch\.meshgrid: in an upcoming release", r"torch\.functional"),
        ):
            warnings.filterwarnings("ignore", message=_msg, category=_cat, module=_mod)
    sys.path.insert(0, REPO)
    sys.exit(main())
