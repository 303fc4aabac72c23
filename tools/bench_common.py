"""Shared by the benchmark scripts in ``tools/`` (run as ``python tools/bench_*.py``, which puts
this folder on ``sys.path``)."""

import platform

__all__ = ["cpu_model", "environment", "markdown_table", "write_report", "read_video_frames"]


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
    """Write a report whole or not at all (temporary file, then rename)."""
    import os

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_video_frames(path: str, n: int, size):
    """(frames, source (w, h), loops): ``n`` BGR frames of the video at ``path`` resized to
    ``size`` = (w, h), reading it again from the start (a loop) when it ends first. Raises
    RuntimeError when no frame can be read."""
    import cv2

    frames, src_size, loops = [], None, 0
    cap = cv2.VideoCapture(path)
    while len(frames) < n:
        ok, img = cap.read()
        if not ok:
            cap.release()
            if not frames:
                raise RuntimeError("cannot read a frame from " + path)
            loops += 1
            cap = cv2.VideoCapture(path)
            continue
        src_size = (img.shape[1], img.shape[0])
        frames.append(cv2.resize(img, tuple(size), interpolation=cv2.INTER_AREA))
    cap.release()
    return frames, src_size, loops


def environment() -> list:
    """Lines describing where and when a benchmark ran: date, CPU, software, threads, load
    average and the git state of the checkout (commit, and whether it has local changes)."""
    import datetime
    import os
    import subprocess
    import sys

    import torch

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True,
                                  timeout=10).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " (with local changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    load = " ".join("{:.2f}".format(x) for x in os.getloadavg())
    return [
        "date: " + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine: {} CPUs ({}), {}".format(os.cpu_count(), cpu_model(), platform.platform()),
        "python {}, torch {}, torch threads {}, OMP_NUM_THREADS={}".format(
            sys.version.split()[0], torch.__version__, torch.get_num_threads(),
            os.environ.get("OMP_NUM_THREADS", "unset"),
        ),
        "load average (1/5/15 min) at the start: " + load,
        "git: {}{}".format(commit, dirty),
    ]


def markdown_table(header, rows) -> list:
    """Lines of a markdown table; columns after the first are right-aligned."""
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out
