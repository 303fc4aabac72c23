#!/usr/bin/env python
"""Training throughput of a config and where one iteration's CPU time goes.

``Trainer``'s loader, model and optimizer: CPU s per iteration and frames per CPU s over
``--iters`` after ``--warmup``; then a ``torch.profiler`` run: forward ops count for the stage
module they run in, backward ops for their forward op's stage (autograd sequence number).

    python tools/bench_training.py --threads 1 --iters 8 --warmup 2 --profile-iters 1 \\
        --out benchmarks/training_cpu.md [KEY VALUE ...]
"""

import argparse
import os
import sys
import time
from collections import defaultdict

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [TOOLS, os.path.dirname(TOOLS)]

import bench_common as bc  # noqa: E402

STAGES = ["backbone", "rpn", "box branch", "mask branch", "propagation head"]


def profile_stages(prof):
    """{stage: [forward ms, backward ms]} summed over the profiled iterations."""
    seq_stage, out = {}, defaultdict(lambda: [0.0, 0.0])

    def stage_of(ev):
        while ev is not None and not ev.name.startswith("stage::"):
            ev = ev.cpu_parent
        return ev

    for ev in prof.events():
        st = stage_of(ev)
        if ev.name.startswith("stage::") and stage_of(ev.cpu_parent) is None:
            out[ev.name[7:]][0] += ev.cpu_time_total / 1e3  # the outermost stage scope
        if st is not None and getattr(ev, "sequence_nr", -1) >= 0:
            seq_stage.setdefault(ev.sequence_nr, st.name[7:])
    for ev in prof.events():
        if ev.name.startswith("autograd::engine::evaluate_function"):
            out[seq_stage.get(ev.sequence_nr, "losses / other")][1] += ev.cpu_time_total / 1e3
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="tiny")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--profile-iters", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    a = p.parse_args()
    bc.set_threads(a.threads)
    rep = bc.Report("Training throughput and one iteration's profile (CPU)")
    from detectron2.utils.events import EventStorage
    from torch.profiler import ProfilerActivity, profile, record_function

    from train_net import Trainer

    cfg = bc.load_cfg(a.config, a.opts)
    model = Trainer.build_model(cfg).train()
    optimizer, loader = Trainer.build_optimizer(cfg, model), iter(Trainer.build_train_loader(cfg))

    def step():
        with record_function("stage::data loading"):
            batch = next(loader)
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        with record_function("stage::optimizer step"):
            optimizer.step()
        return sum(len(clip["image"]) for clip in batch)

    with EventStorage(0):
        for _ in range(a.warmup):
            step()
        c0 = time.process_time()
        frames = sum(step() for _ in range(a.iters))
        cpu = time.process_time() - c0
        rh = model.roi_heads
        mods = {"backbone": [model.backbone], "rpn": [model.proposal_generator],
                "box branch": [rh.box_pooler, rh.box_head, rh.box_predictor],
                "mask branch": [rh.mask_pooler, rh.mask_head] if rh.mask_on else [],
                "propagation head": [rh.mask_prop_head]}  # fmt: skip
        for name, ms in mods.items():
            for m in ms:  # forward ops of a stage run in its "stage::name" scope
                # the propagation head is also entered by reduce() and, with FINE_CROPS, by
                # forward_crops() instead of forward()
                for meth in ("forward", "forward_crops", "reduce"):
                    if hasattr(m, meth):
                        setattr(m, meth, _scoped(record_function, name, getattr(m, meth)))
        c1 = time.process_time()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(a.profile_iters):
                step()
        per_it = 1000 * (time.process_time() - c1) / a.profile_iters
    stages = profile_stages(prof)
    rep.table(["config", "CPU s / iteration", "frames / CPU s", "iterations / CPU s"],
              [[" ".join([a.config] + a.opts), "{:.2f}".format(cpu / a.iters),
                "{:.1f}".format(frames / cpu), "{:.2f}".format(a.iters / cpu)]],
              "{} clips of {} frames; {} iterations after {} warm-up:".format(
                  cfg.SOLVER.IMS_PER_BATCH, cfg.INPUT.CLIP.NUM_SAMPLED_FRAMES + 1, a.iters,
                  a.warmup))  # fmt: skip
    rows = [[st, "{:.0f}".format(f / a.profile_iters), "{:.0f}".format(b / a.profile_iters)]
            for st, (f, b) in sorted(stages.items(), key=lambda kv: -sum(kv[1]))]  # fmt: skip
    rep.table(["stage", "forward ms", "backward ms"], rows,
              "Profile, CPU ms per iteration (profiler on: {:.0f} ms an iteration in all):".format(
                  per_it))  # fmt: skip
    rep.save(a.out)


def _scoped(record_function, name, fn):
    """``fn`` run inside the profiler scope ``stage::name``."""

    def run(*args, **kwargs):
        with record_function("stage::" + name):
            return fn(*args, **kwargs)

    return run


if __name__ == "__main__":
    main()
