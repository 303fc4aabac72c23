#!/usr/bin/env python
"""A real-size dry run on the CPU: the R50 config on a generated dataset of YouTube-VIS's shape.

1. generates ``--videos`` videos of ``--length`` frames at ``--width`` x ``--height`` (JPEG, the
   project's synthetic generator) and writes them as ``ytvis_2019/train.json`` +
   ``ytvis_2019/train/JPEGImages`` under a scratch folder, with YouTube-VIS 2019's 40 categories
   (the config's ``ytvis_2019_train`` reads them through ``$DETECTRON2_DATASETS``);
2. times the training mapper (``ClipDatasetMapper``, what each loader worker runs) on
   ``--loader-clips`` clips in one single-threaded process: ms per clip per worker;
3. trains the config (``MODEL.WEIGHTS ""``, ``MODEL.DEVICE cpu``) for ``--iters`` iterations
   with ``--processes`` processes under torchrun (gloo), ``SOLVER.IMS_PER_BATCH`` =
   ``--processes`` (one clip a process), ``DATALOADER.NUM_WORKERS 0``: per process and
   iteration the data, forward,
   backward (with DDP's all-reduce) and optimizer times, the input size and the peak RSS;
4. writes a markdown report (``--out``): the numbers, and how many loader workers keep a GPU
   fed; the measurements themselves go next to it (``.json``).

    OMP_NUM_THREADS=1 nice -n 15 python tools/bench_dry_run.py --iters 4 \\
        --out benchmarks/dry_run_r50_cpu.md [KEY VALUE ...]

The scratch folder (``--work``, default a new temporary folder) is deleted at the end unless
``--keep``; a given ``--work`` must be absent or empty.
"""

import argparse
import functools
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [TOOLS, os.path.dirname(TOOLS)]

import bench_common as bc  # noqa: E402

DATASET = "ytvis_2019"  # the config's DATASETS.TRAIN is ytvis_2019_train
RANK_FILE = "dry_run_rank{}.json"


# ---------------------------------------------------------------------------------- dataset
def make_ytvis_shaped_dataset(root, videos=4, length=36, width=1280, height=720, seed=0):
    """Write ``root/ytvis_2019/train.json`` and its frames ``root/ytvis_2019/train/JPEGImages``:
    ``videos`` synthetic videos (the project's generator) of ``length`` ``width`` x ``height``
    JPEG frames, their objects relabelled over YouTube-VIS 2019's 40 categories (annotation i
    gets category ``7 i mod 40 + 1``). Returns the JSON's path."""
    from maskprop_d2.data.builtin import YTVIS_2019_CATEGORIES
    from maskprop_d2.data.synthetic import generate_synthetic_dataset

    out = os.path.join(root, DATASET)
    if os.path.lexists(out):
        raise FileExistsError(f"{out} exists: give an empty --work folder")
    gen = os.path.join(root, ".generated")
    generate_synthetic_dataset(gen, num_train=videos, num_val=1, length=length, height=height,
                               width=width, seed=seed)  # fmt: skip
    with open(os.path.join(gen, "train.json")) as f:
        data = json.load(f)
    for i, ann in enumerate(data["annotations"]):
        ann["category_id"] = 7 * i % len(YTVIS_2019_CATEGORIES) + 1
    data["categories"] = [{"id": c["id"], "name": c["name"], "supercategory": "object"}
                          for c in YTVIS_2019_CATEGORIES]  # fmt: skip
    data["info"] = {"description": "tools/bench_dry_run.py: synthetic frames in YouTube-VIS "
                    "2019's shape (not real video)", "params": data["info"].get("params", {})}
    os.makedirs(os.path.join(out, "train"))
    os.rename(os.path.join(gen, "train", "JPEGImages"), os.path.join(out, "train", "JPEGImages"))
    json_file = os.path.join(out, "train.json")
    bc.write_report(json.dumps(data), json_file)
    shutil.rmtree(gen)  # what generate_synthetic_dataset wrote above
    return json_file


# ---------------------------------------------------------------------------------- numbers
def summarize(values):
    """``{"n", "mean", "median", "min", "max"}`` of a non-empty list of numbers."""
    if not values:
        raise ValueError("nothing to summarize")
    return {"n": len(values), "mean": statistics.fmean(values),
            "median": statistics.median(values), "min": min(values), "max": max(values)}


def workers_needed(load_ms_per_clip, clips_per_step, step_ms):
    """Loader workers (per GPU) that keep up with a GPU doing a step of ``clips_per_step`` clips
    in ``step_ms``: ceil(load_ms_per_clip x clips_per_step / step_ms), at least 1."""
    if step_ms <= 0:
        raise ValueError(f"step_ms must be > 0, got {step_ms}")
    need = load_ms_per_clip * clips_per_step / step_ms
    return max(1, int(-(-need // 1)))


def time_loader(cfg, clips, seed=0):
    """Wall and CPU ms per clip of the training mapper, one process and thread (as one loader
    worker): ``{"wall_ms": [...], "cpu_ms": [...], "input_hw": [...], "frames": [...]}`` over
    ``clips`` clips after one warm-up clip, videos in turn."""
    import numpy as np

    from maskprop_d2.data import ClipDatasetMapper
    from maskprop_d2.data.build import get_video_dataset_dicts

    records = get_video_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=True)
    mapper = ClipDatasetMapper(cfg, is_train=True)
    np.random.seed(seed)
    mapper(records[0])
    out = {"wall_ms": [], "cpu_ms": [], "input_hw": [], "frames": []}
    for i in range(clips):
        w0, c0 = time.perf_counter(), time.process_time()
        clip = mapper(records[i % len(records)])
        out["wall_ms"].append(1000 * (time.perf_counter() - w0))
        out["cpu_ms"].append(1000 * (time.process_time() - c0))
        out["input_hw"].append(list(clip["image"][0].shape[1:]))
        out["frames"].append(len(clip["image"]))
    return out


# ---------------------------------------------------------------------------------- worker
def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class StepClock:
    """Marks (wall s, CPU s) at the points of detectron2's ``SimpleTrainer.run_step`` and turns
    each step's marks into ms: data, forward, backward (``zero_grad`` to ``step``: the backward
    pass with DDP's all-reduce and the metrics gather), optimizer, step."""

    def __init__(self):
        self.steps, self._marks = [], {}

    def mark(self, name):
        self._marks[name] = (time.perf_counter(), time.process_time())

    def finish(self, **extra):
        m = self._marks

        def ms(a, b, k):
            return 1000 * (m[b][k] - m[a][k])

        step = {}
        for k, sfx in ((0, "ms"), (1, "cpu_ms")):
            step.update({f"data_{sfx}": ms("begin", "data", k),
                         f"forward_{sfx}": ms("forward_begin", "forward_end", k),
                         f"backward_{sfx}": ms("zero_grad", "optimizer_begin", k),
                         f"optimizer_{sfx}": ms("optimizer_begin", "optimizer_end", k),
                         f"step_{sfx}": ms("begin", "end", k)})  # fmt: skip
        step.update(extra, rss_mib=_current_rss_mib())
        self.steps.append(step)
        self._marks = {}


def _current_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def instrument(simple_trainer, clock):
    """Wrap the data iterator, the model's forward, the optimizer's ``zero_grad`` / ``step`` and
    ``run_step`` of a detectron2 ``SimpleTrainer`` so that ``clock`` gets one entry a step."""
    trainer, seen = simple_trainer, {}
    data_iter, model, opt = trainer._data_loader_iter, trainer.model, trainer.optimizer
    run_step, forward, zero_grad, step = trainer.run_step, model.forward, opt.zero_grad, opt.step

    class _Timed:
        def __iter__(self):
            return self

        def __next__(self):
            batch = next(data_iter)
            clock.mark("data")
            seen["hw"] = [list(c["image"][0].shape[1:]) for c in batch]
            seen["frames"] = [len(c["image"]) for c in batch]
            return batch

    def timed(fn, before, after):
        @functools.wraps(fn)  # keeps the LR scheduler's mark on optimizer.step
        def wrapped(*a, **k):
            clock.mark(before) if before else None
            out = fn(*a, **k)
            clock.mark(after)
            return out

        return wrapped

    def timed_step():
        clock.mark("begin")
        run_step()
        clock.mark("end")
        clock.finish(input_hw=seen["hw"], frames=seen["frames"])

    trainer._data_loader_iter = _Timed()
    model.forward = timed(forward, "forward_begin", "forward_end")
    opt.zero_grad = timed(zero_grad, None, "zero_grad")
    opt.step = timed(step, "optimizer_begin", "optimizer_end")
    trainer.run_step = timed_step


def train_opts(a):
    """The config overrides of the training run."""
    # random init: a small learning rate keeps the losses finite (the times do not depend on it)
    return ["SOLVER.IMS_PER_BATCH", a.nproc, "SOLVER.MAX_ITER", a.iters, "SOLVER.BASE_LR", 1e-4,
            "SOLVER.CHECKPOINT_PERIOD", 10**6, "DATALOADER.NUM_WORKERS", 0,
            "DATASETS.TEST", "()", "SEED", 0,
            "OUTPUT_DIR", os.path.join(a.work, "output")] + list(a.opts)  # fmt: skip


def _worker_main(a):
    import detectron2.utils.comm as comm
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    from train_net import Trainer

    rank = comm.get_rank()
    setup_logger(distributed_rank=rank)
    setup_logger(distributed_rank=rank, name="maskprop_d2")
    cfg = bc.load_cfg("r50", [str(o) for o in train_opts(a)])
    cfg.freeze()
    seed_all_rng(cfg.SEED + rank)
    rss = {"start": _maxrss_mib()}
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    rss["built"] = _maxrss_mib()
    clock = StepClock()
    instrument(trainer._trainer, clock)
    trainer.train()
    rss["end"] = _maxrss_mib()
    result = {"rank": rank, "world_size": comm.get_world_size(), "steps": clock.steps,
              "maxrss_mib": rss, "torch_threads": __import__("torch").get_num_threads()}
    bc.write_report(json.dumps(result), os.path.join(a.work, RANK_FILE.format(rank)))


def run_worker(a):
    """Under torchrun: join the process group (``maskprop_d2.distributed.launch``) and train."""
    from maskprop_d2.distributed import launch

    launch(_worker_main, 1, args=(a,))


# ---------------------------------------------------------------------------------- report
def _f(x, fmt="{:.0f}"):
    return fmt.format(x)


def report_lines(loader, ranks, clips_per_gpu_step=2, gpu_step_ms=(250, 500, 1000)):
    """Markdown lines of the results: ``loader`` from :func:`time_loader`, ``ranks`` the
    per-process dicts the workers wrote (rank order). Iteration 0 (start-up) is left out of the
    means when there are more."""
    lines = []
    w, c = summarize(loader["wall_ms"]), summarize(loader["cpu_ms"])
    sizes = sorted({tuple(hw) for hw in loader["input_hw"]})
    lines += ["## Data loading, per clip per loader worker", "",
              "The training mapper (`ClipDatasetMapper`: decode {} JPEG frames, resize, masks) "
              "in one process and thread, {} clips:".format(
                  "/".join(sorted({str(n) for n in loader["frames"]})), w["n"]), ""]
    lines += bc.markdown_table(
        ["", "mean ms", "median ms", "min ms", "max ms"],
        [["wall"] + [_f(w[k]) for k in ("mean", "median", "min", "max")],
         ["CPU"] + [_f(c[k]) for k in ("mean", "median", "min", "max")]])  # fmt: skip
    lines += ["", "Input sizes (H x W) of these clips: " + ", ".join(
        "{}x{}".format(*hw) for hw in sizes) + ".", ""]

    lines += ["## Training, per process (1 clip a process)", ""]
    rows, peaks = [], []
    for r in ranks:
        steps = r["steps"][1:] if len(r["steps"]) > 1 else r["steps"]
        s = {k: summarize([st[k] for st in steps])["mean"] for k in steps[0]
             if k.endswith("ms")}  # fmt: skip
        rows.append(["rank {}".format(r["rank"]), len(steps)]
                    + [_f(s[k + "_ms"]) + " / " + _f(s[k + "_cpu_ms"])
                       for k in ("data", "forward", "backward", "optimizer", "step")])  # fmt: skip
        peaks.append([
            "rank {}".format(r["rank"]), _f(r["maxrss_mib"]["built"]), _f(r["maxrss_mib"]["end"]),
            _f(r["maxrss_mib"]["end"] - r["maxrss_mib"]["built"]),
        ])  # fmt: skip
    lines += ["Mean ms per iteration, wall / CPU of the process ({}): ".format(
        "iteration 0 left out" if len(ranks[0]["steps"]) > 1 else "one iteration"), ""]
    lines += bc.markdown_table(["process", "iterations", "data", "forward",
                                "backward (+all-reduce)", "optimizer", "step"], rows)
    lines += ["", "Wall time counts waiting: for the other process in DDP's all-reduce (the "
              "processes' clips differ in size, the faster one waits in its backward pass) and "
              "for the CPU when the machine is busy; CPU time is the process's own work.", "",
              "Every iteration (CPU ms of the process; the input size decides the cost):", ""]
    rows = []
    for r in ranks:
        for i, st in enumerate(r["steps"]):
            rows.append([r["rank"], i, ", ".join("{}x{}".format(*hw) for hw in st["input_hw"]),
                         "+".join(map(str, st["frames"]))]
                        + [_f(st[k + "_cpu_ms"]) for k in ("data", "forward", "backward", "step")]
                        + [_f(st["step_ms"]), _f(st["rss_mib"])])  # fmt: skip
    lines += bc.markdown_table(["rank", "iteration", "input H x W", "frames", "data CPU",
                                "forward CPU", "backward CPU", "step CPU", "step wall",
                                "RSS MiB after"], rows)
    lines += ["", "Peak memory (`ru_maxrss`) per process, MiB: after the model, optimizer and "
              "loader are built; at the end; the difference (one clip's training step):", ""]
    lines += bc.markdown_table(["process", "built", "end", "end - built"], peaks)

    load = w["mean"]
    lines += ["", "## Loader workers to keep a GPU fed", "",
              "A GPU taking `step_ms` for a step of `c` clips needs `workers >= load_ms x c / "
              "step_ms` loader workers (`DATALOADER.NUM_WORKERS`, per GPU process), `load_ms` "
              "the per-clip time above (mean wall, {} ms) on a core like this one. The "
              "configs' `IMS_PER_BATCH 16` on 8 GPUs is c = {} clips a GPU step. GPU step times "
              "were not measured here (no GPU); for some assumed ones:".format(
                  _f(load), clips_per_gpu_step), ""]  # fmt: skip
    lines += bc.markdown_table(
        ["GPU step ms (assumed)", "clips / GPU step", "load ms / GPU step", "workers needed"],
        [[t, clips_per_gpu_step, _f(load * clips_per_gpu_step),
          workers_needed(load, clips_per_gpu_step, t)] for t in gpu_step_ms])  # fmt: skip
    return lines


# ---------------------------------------------------------------------------------- main
def _torchrun_cmd(a):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(a.nproc), os.path.abspath(__file__), "--worker",
           "--work", a.work, "--processes", str(a.nproc), "--iters", str(a.iters)]  # fmt: skip
    return cmd + [str(o) for o in a.opts]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="", help="scratch folder (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--length", type=int, default=36)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--loader-clips", type=int, default=16)
    p.add_argument("--processes", dest="nproc", type=int, default=2)
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--timeout", type=float, default=3600, help="seconds for the training run")
    p.add_argument("--out", default="")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    a = p.parse_args(argv)
    if a.worker:
        os.environ["DETECTRON2_DATASETS"] = a.work
        return run_worker(a)

    made_work = not a.work
    if made_work:
        a.work = tempfile.mkdtemp(prefix="maskprop-dry-run-")
    elif os.path.isdir(a.work) and os.listdir(a.work):
        p.error(f"--work {a.work} is not empty")
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    # builtin splits are registered on import from $DETECTRON2_DATASETS: set it first
    os.environ["DETECTRON2_DATASETS"] = a.work
    bc.set_threads(1)
    rep = bc.Report("Real-size dry run of the R50 config on the CPU ({} processes)".format(a.nproc))
    niceness = os.nice(0)
    prefix = "OMP_NUM_THREADS={} ".format(os.environ["OMP_NUM_THREADS"]) + (
        "nice -n {} ".format(niceness) if niceness else "")
    rep.lines[2] = "- command: `{}python {}`".format(prefix, shlex.join(
        [os.path.relpath(os.path.abspath(sys.argv[0]), bc.REPO)] + sys.argv[1:]))
    try:
        t0 = time.perf_counter()
        json_file = make_ytvis_shaped_dataset(a.work, a.videos, a.length, a.width, a.height)
        gen_s = time.perf_counter() - t0
        from detectron2.data import MetadataCatalog

        import maskprop_d2.data  # noqa: F401  (registers the builtin splits)

        registered = MetadataCatalog.get(DATASET + "_train").json_file
        if os.path.abspath(registered) != json_file:
            raise RuntimeError(f"{DATASET}_train reads {registered}, not {json_file}")
        cfg = bc.load_cfg("r50", [str(o) for o in train_opts(a)])
        print("timing the loader on {} clips ...".format(a.loader_clips), flush=True)
        loader = time_loader(cfg, a.loader_clips)
        cmd = _torchrun_cmd(a)
        print("running: " + " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.pop("WORLD_SIZE", None)
        proc = subprocess.run(cmd, cwd=bc.REPO, env=env, timeout=a.timeout)
        train_s = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"the training run failed (exit status {proc.returncode})")
        ranks = []
        for r in range(a.nproc):
            with open(os.path.join(a.work, RANK_FILE.format(r))) as f:
                ranks.append(json.load(f))
    finally:
        if made_work and not a.keep:
            shutil.rmtree(a.work, ignore_errors=True)  # the temporary folder made above
        else:
            print("the dataset and the run's output are in " + a.work, flush=True)
    rep.add("Training command the tool ran ({} s in all, start-up and the final checkpoint "
            "included):".format(_f(train_s)), "",
            "```", "OMP_NUM_THREADS=1 torchrun " + shlex.join(
                os.path.relpath(c, bc.REPO) if c == os.path.abspath(__file__) else
                ("WORK" if c == a.work else c) for c in cmd[3:]), "```")  # fmt: skip
    rep.add("Config: `{}` with `MODEL.DEVICE cpu MODEL.WEIGHTS \"\"` (random init, nothing "
            "downloaded) and `{}`.".format(bc.CONFIGS["r50"], shlex.join(
                "WORK/output" if str(o) == os.path.join(a.work, "output") else str(o)
                for o in train_opts(a))))  # fmt: skip
    rep.add("Dataset: {} training videos x {} frames, {} x {} JPEG (the synthetic generator's "
            "content, relabelled over YouTube-VIS 2019's 40 categories), written as "
            "`ytvis_2019/train.json` in {:.0f} s.".format(a.videos, a.length, a.width, a.height,
                                                          gen_s))  # fmt: skip
    rep.add(*report_lines(loader, ranks))
    print("\n".join(rep.lines[-40:]))
    if a.out:  # the measurements behind the report, next to it
        raw = {"command": rep.lines[2], "train_opts": [str(o) for o in train_opts(a)],
               "dataset": {"videos": a.videos, "length": a.length, "width": a.width,
                           "height": a.height, "generation_s": gen_s},
               "loader": loader, "ranks": ranks}  # fmt: skip
        bc.write_report(json.dumps(raw, indent=1), os.path.splitext(a.out)[0] + ".json")
    rep.save(a.out)


if __name__ == "__main__":
    main()
