#!/usr/bin/env python
"""Training throughput of a config and where one iteration's time goes (CPU).

Runs the real training step (``Trainer``'s loader, model, optimizer) for ``--iters`` iterations
after ``--warmup`` and reports iterations/s and frames/s (frames = every frame of every clip that
goes through the backbone). Then profiles ``--profile-iters`` more iterations with
``torch.profiler`` and splits each iteration into stages:

* data loading (the loader's ``next``), optimizer step, everything else;
* forward and backward of: backbone (ResNet + FPN), RPN, box branch (pooler + head + predictor),
  mask branch (pooler + head), propagation head (reduce + offsets + deformable conv), losses.

Forward ops are attributed to the stage whose ``record_function`` scope they run in (the stage
modules' ``forward`` is wrapped for the run); a backward op is attributed to the stage of the
forward op that created it (autograd's sequence number links the two). Backward ops with no
forward stage (loss arithmetic, ops outside the wrapped modules) count as "losses / other".

Usage::

    python tools/bench_training.py --config-file configs/synthetic/maskprop_tiny.yaml \
        --out benchmarks/training_profile_cpu.md [--iters 20] [KEY VALUE ...]
"""

import argparse
import os
import sys
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_common import cpu_model, write_report  # noqa: E402

STAGES = ["backbone", "rpn", "box branch", "mask branch", "propagation head"]


def _wrap(module, name):
    orig = module.forward

    def forward(*args, **kwargs):
        with record_function("stage::" + name):
            return orig(*args, **kwargs)

    module.forward = forward


def _stage_modules(model):
    rh = model.roi_heads
    out = {
        "backbone": [model.backbone],
        "rpn": [model.proposal_generator],
        "box branch": [rh.box_pooler, rh.box_head, rh.box_predictor],
        "propagation head": [rh.mask_prop_head],
    }
    if getattr(rh, "mask_on", False):
        out["mask branch"] = [rh.mask_pooler, rh.mask_head]
    return out


def _frames_in(batch):
    return sum(len(clip["image"]) if isinstance(clip["image"], list) else 1 for clip in batch)


def _step(model, optimizer, batch):
    losses = model(batch)
    loss = sum(losses.values())
    optimizer.zero_grad()
    with record_function("stage::backward_all"):
        loss.backward()
    with record_function("stage::optimizer"):
        optimizer.step()
    return {k: float(v) for k, v in losses.items()}


def _attribute(prof):
    """ms per stage for forward and backward from the profiler's events (summed over iters)."""
    events = prof.events()
    fwd = defaultdict(float)
    bwd = defaultdict(float)
    seq_stage = {}
    other = defaultdict(float)
    by_id = {}
    for ev in events:
        by_id[id(ev)] = ev

    def stage_of(ev):
        p = ev
        while p is not None:
            if p.name.startswith("stage::"):
                return p.name[len("stage::") :]
            p = p.cpu_parent
        return None

    for ev in events:
        if ev.name.startswith("stage::") and ev.name[7:] in STAGES:
            # outermost stage scope only (a stage never nests in another stage here)
            parent = ev.cpu_parent
            nested = False
            while parent is not None:
                if parent.name.startswith("stage::") and parent.name[7:] in STAGES:
                    nested = True
                    break
                parent = parent.cpu_parent
            if not nested:
                fwd[ev.name[7:]] += ev.cpu_time_total / 1e3
        elif ev.name in ("stage::optimizer", "stage::data", "stage::backward_all"):
            other[ev.name[7:]] += ev.cpu_time_total / 1e3
        seq = getattr(ev, "sequence_nr", -1)
        if seq is not None and seq >= 0 and not ev.name.startswith("autograd::"):
            st = stage_of(ev)
            if st in STAGES:
                seq_stage.setdefault(seq, st)
    for ev in events:
        if ev.name.startswith("autograd::engine::evaluate_function"):
            st = seq_stage.get(getattr(ev, "sequence_nr", -1), "losses / other")
            bwd[st] += ev.cpu_time_total / 1e3
    return fwd, bwd, other


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config-file", default="configs/synthetic/maskprop_tiny.yaml")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--profile-iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default="", help="markdown report (printed too)")
    ap.add_argument("--label", default="", help="row label in the report")
    ap.add_argument("opts", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from maskprop_d2 import get_maskprop_cfg
    from train_net import Trainer

    cfg = get_maskprop_cfg(args.config_file, args.opts)
    model = Trainer.build_model(cfg)
    model.train()
    optimizer = Trainer.build_optimizer(cfg, model)
    loader = iter(Trainer.build_train_loader(cfg))
    from detectron2.utils.events import EventStorage

    storage = EventStorage(0)
    storage.__enter__()

    for _ in range(args.warmup):
        _step(model, optimizer, next(loader))
    frames = 0
    data_s = 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        td = time.perf_counter()
        batch = next(loader)
        data_s += time.perf_counter() - td
        frames += _frames_in(batch)
        _step(model, optimizer, batch)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    its, fps = args.iters / wall, frames / wall

    for name, mods in _stage_modules(model).items():
        for m in mods:
            _wrap(m, name)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t1 = time.perf_counter()
        for _ in range(args.profile_iters):
            with record_function("stage::data"):
                batch = next(loader)
            _step(model, optimizer, batch)
        prof_wall = (time.perf_counter() - t1) * 1e3 / args.profile_iters
    fwd, bwd, other = _attribute(prof)
    n = args.profile_iters
    rows = []
    total_known = 0.0
    for st in STAGES + ["losses / other"]:
        f, b = fwd.get(st, 0.0) / n, bwd.get(st, 0.0) / n
        rows.append((st, f, b))
        total_known += f + b
    data_ms, opt_ms = other["data"] / n, other["optimizer"] / n
    rest = prof_wall - total_known - data_ms - opt_ms
    # forward time not inside any stage (preprocess, target matching, loss terms) = rest

    lines = [
        "# Training throughput and one iteration's profile (CPU)",
        "",
        "Command: `python tools/bench_training.py --config-file {} {}`".format(
            args.config_file, " ".join(args.opts)
        ).rstrip(),
        "",
        "CPU: {}, torch {}, {} threads. Batch: {} clips of up to {} frames; {} timed "
        "iterations after {} warm-up.".format(
            cpu_model(),
            torch.__version__,
            torch.get_num_threads(),
            cfg.SOLVER.IMS_PER_BATCH,
            cfg.INPUT.CLIP.NUM_SAMPLED_FRAMES + 1,
            args.iters,
            args.warmup,
        ),
        "",
        "| {} | it/s | frames/s | s/it | CPU s/it | data s/it | load avg |".format(
            args.label or "config"
        ),
        "|---|---|---|---|---|---|---|",
        "| {} | {:.3f} | {:.2f} | {:.3f} | {:.3f} | {:.3f} | {:.2f} |".format(
            args.label or os.path.basename(args.config_file),
            its,
            fps,
            1 / its,
            cpu / args.iters,
            data_s / args.iters,
            os.getloadavg()[0],
        ),
        "",
        "CPU s/it is process CPU time (all threads): with one thread it is the wall time a quiet "
        "machine would show, and it moves little when other jobs share the machine.",
        "",
        "Profile (ms per iteration, mean of {} profiled iterations; profiler overhead included, "
        "wall {:.0f} ms/it):".format(n, prof_wall),
        "",
        "| stage | forward | backward | total |",
        "|---|---|---|---|",
    ]
    for st, f, b in rows:
        lines.append("| {} | {:.0f} | {:.0f} | {:.0f} |".format(st, f, b, f + b))
    lines += [
        "| data loading | {:.0f} | | {:.0f} |".format(data_ms, data_ms),
        "| optimizer step | | | {:.0f} |".format(opt_ms),
        "| unattributed (preprocess, targets, Python) | | | {:.0f} |".format(rest),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_report(text, args.out)


if __name__ == "__main__":
    main()
