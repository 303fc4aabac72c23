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
