"""The benchmark harness of ``tools/`` (``python tools/NAME.py`` puts this folder on ``sys.path``):
environment record, configs as ``train_net.setup`` loads them, frames, CPU timing, subprocess
isolation for memory figures, markdown reports, plots. What the numbers mean: docs/results.md."""

import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"tiny": "configs/synthetic/maskprop_tiny.yaml",
           "r50": "configs/YouTubeVIS-2019/maskprop_R50_FPN.yaml"}  # fmt: skip
VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"  # Debian's opencv-doc, 768×576


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_report(text: str, path: str) -> None:
    """Write a report whole or not at all (``maskprop_d2.utils.file_io.atomic_open``)."""
    from maskprop_d2.utils.file_io import atomic_open

    with atomic_open(path, "w") as f:
        f.write(text)


def read_video_frames(path: str, n: int, size):
    """(frames, None, None): ``n`` BGR frames of ``path`` at ``size`` = (w, h), looped."""
    return list(video_frames(path, n, size)), None, None


def environment() -> list:
    """Lines saying when and where a benchmark ran: date, machine, versions, threads, load, git."""
    import datetime

    import torch

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " (with local changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return [
        "date: " + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine: {} CPUs ({}), {}".format(os.cpu_count(), cpu_model(), platform.platform()),
        "python {}, torch {}, torch threads {}, OMP_NUM_THREADS={}".format(sys.version.split()[0],
            torch.__version__, torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS", "unset")),
        "load average (1/5/15 min) at the start: %.2f %.2f %.2f" % os.getloadavg(),
        "git: {}{}".format(commit, dirty),
    ]


def markdown_table(header, rows) -> list:
    """Lines of a markdown table; columns after the first are right-aligned."""
    out = ["| " + " | ".join(map(str, header)) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def load_cfg(config, opts=(), weights=""):
    """``train_net.setup``'s config (``get_maskprop_cfg``) of ``config`` (a ``CONFIGS`` alias or a
    path) and ``opts``, on the CPU with ``weights`` (default: random init). Not frozen."""
    from maskprop_d2.config import get_maskprop_cfg
    from maskprop_d2.inference import check_inference_config

    path = CONFIGS.get(config, config)
    cfg = get_maskprop_cfg(path if os.path.isabs(path) else os.path.join(REPO, path), opts)
    check_inference_config(cfg, path)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = weights
    return cfg


def fixed_detections(model, seed=0):
    """A random model that keeps exactly k detections (score thresholds 0, top k): zeroed RPN
    deltas and box predictor (proposals = anchors), random class bias; same cost as trained."""
    import torch

    pred = model.roi_heads.box_predictor
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in (model.proposal_generator.rpn_head.anchor_deltas, pred.bbox_pred,
                      pred.cls_score):
            layer.weight.zero_()
            layer.bias.zero_()
        pred.cls_score.bias.copy_(torch.randn(pred.cls_score.bias.shape, generator=g))
    return model


def video_frames(source, n, size):
    """``n`` BGR frames of ``size`` = (w, h), one at a time: of the video file ``source`` (looped)
    or, for ``"synthetic"``, generated (noisy random texture, six bouncing shapes, seed 0)."""
    import cv2
    import numpy as np

    if source != "synthetic":
        cap, got = cv2.VideoCapture(source), 0
        while got < n:
            ok, img = cap.read()
            if not ok:  # loop from the start
                cap.release()
                if not got:
                    raise RuntimeError("cannot read a frame from " + source)
                cap = cv2.VideoCapture(source)
                continue
            got += 1
            yield cv2.resize(img, tuple(size), interpolation=cv2.INTER_AREA)
        cap.release()
        return
    w, h = size
    rng = np.random.default_rng(0)
    bg = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    objs = [[rng.integers(2), int(rng.integers(h // 20, h // 7)),
             rng.uniform([w / 8, h / 8], [7 * w / 8, 7 * h / 8]), rng.uniform(-w / 120, w / 120, 2),
             tuple(int(c) for c in rng.integers(0, 256, 3))] for _ in range(6)]  # fmt: skip
    for _ in range(n):
        img = np.clip(bg + rng.integers(-10, 11, (h, w, 1)), 0, 255).astype(np.uint8)
        for square, r, p, v, color in objs:
            p += v
            for d, lim in ((0, w), (1, h)):
                if not r <= p[d] <= lim - r:
                    v[d], p[d] = -v[d], min(max(p[d], r), lim - r)
            x, y = int(p[0]), int(p[1])
            if square:
                cv2.rectangle(img, (x - r, y - r), (x + r, y + r), color, -1)
            else:
                cv2.circle(img, (x, y), r, color, -1)
        yield img


def timed(fn, repeats=5, budget_s=30.0):
    """(median CPU ms, last result) of up to ``repeats`` calls of ``fn`` after a warm-up (fewer,
    at least one, past ``budget_s``). With one thread, CPU time is the call's own work."""
    out = fn()
    times = []
    while len(times) < repeats and sum(times) < 1000 * budget_s:
        t0 = time.process_time()
        out = fn()
        times.append(1000 * (time.process_time() - t0))
    return sorted(times)[len(times) // 2], out


def set_threads(n):
    """One thread (or ``n``) for torch, OpenCV and the children this process starts."""
    import cv2
    import torch

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def emit_result(obj):
    """What a worker of ``run_isolated`` prints last: ``RESULT <json>``."""
    print("RESULT " + json.dumps(obj), flush=True)


def rss_mib(peak=False):
    """This process's resident size in MiB (Linux ``/proc``), or with ``peak`` its peak so far
    (``ru_maxrss``)."""
    import resource

    if peak:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_isolated(cmd, env=None):
    """Run ``cmd`` (a ``.py`` first: with this Python) in a fresh process: its ``RESULT`` dict
    ({} if none) with its own ``peak_rss_mib`` (``ru_maxrss``), ``cpu_s`` and ``wall_s``.
    RuntimeError with the end of its output if it fails."""
    import tempfile

    cmd = [sys.executable, *cmd] if cmd[0].endswith(".py") else list(cmd)
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env=dict(os.environ, **(env or {})))  # fmt: skip
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        text = log.read()
    if proc.returncode:
        raise RuntimeError("{} failed:\n{}".format(" ".join(cmd), text[-3000:]))
    res = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    out = json.loads(res[-1][7:]) if res else {}
    out.update(peak_rss_mib=ru.ru_maxrss / 1024, cpu_s=ru.ru_utime + ru.ru_stime, wall_s=wall)
    return out


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig, path):
    """Save a matplotlib figure whole or not at all, and close it."""
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    os.replace(tmp, path)


class Report:
    """Markdown: title, command, ``environment()``, detectron2's ``collect_env_info``, then what
    is added (``table`` prints too); ``save`` adds the load average and writes atomically."""

    def __init__(self, title):
        from detectron2.utils.collect_env import collect_env_info

        cmd = " ".join([os.path.relpath(os.path.abspath(sys.argv[0]), REPO)] + sys.argv[1:])
        self.lines = ["# " + title, "", "- command: `python {}`".format(cmd)]
        self.lines += ["- " + e for e in environment()] + ["", "<details><summary>detectron2 "
                       "collect_env_info</summary>", "", "```",
                       collect_env_info().split("PyTorch built with")[0].strip(), "```",
                       "</details>", ""]  # fmt: skip

    def add(self, *lines):
        self.lines += list(lines) + [""]

    def table(self, header, rows, caption=""):
        t = markdown_table(header, rows)
        print("\n".join(([caption] if caption else []) + t), flush=True)
        self.add(*([caption, ""] if caption else []), *t)

    def save(self, path):
        self.add("Load average (1/5/15 min) at the end: %.2f %.2f %.2f" % os.getloadavg())
        if path:
            write_report("\n".join(self.lines), path)
            print("wrote " + path)
