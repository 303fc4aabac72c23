"""Shared by the benchmark scripts in ``tools/`` (run as ``python tools/bench_*.py``, which puts
this folder on ``sys.path``)."""

import platform

__all__ = ["cpu_model"]


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
