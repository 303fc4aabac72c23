#!/usr/bin/env python
"""Run detectron2's own test suite (its ``tests/`` folder at the v0.6 tag) against the detectron2
this environment imports, and classify every failure:

* ``needs _C``: the compiled C++/CUDA ops, which the registry install replaces by a stand-in
  that raises (``detectron2._C.<op> is not available``), or CUDA;
* ``needs an optional package``: a test dependency detectron2 does not require (``black``,
  ``shapely``) or ``caffe2`` (no current torch ships it; ``detectron2.export`` exports its
  Caffe2 API only when it exists);
* ``needs data or network``: a dataset under ``datasets/``, a model-zoo download or another URL,
  or a file of the source checkout that is not installed (``detectron2.projects`` maps to the
  checkout's ``projects/``);
* ``other``: anything else -- a gap of the installed sources on this stack, to be looked at.

    git clone --depth 1 --branch v0.6 https://github.com/facebookresearch/detectron2 d2-v0.6
    python tools/run_detectron2_tests.py --tests d2-v0.6/tests --out docs/detectron2_tests.md

The suite runs in a temporary copy (its tests write files next to themselves), one process,
no network needed (what needs it fails and is classified). The report lists the counts, every
failure with its class and first error line, and the environment.
"""

import argparse
import collections
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

NEEDS_C = re.compile(r"detectron2\._C|_C\.\w+ is not available|not compiled with GPU|CUDA|cuda|"
                     r"NCCL|nvcc|torch\.ops\.detectron2|_OpNamespace' 'detectron2'|"
                     r"coco_eval_opt|COCOeval_opt", re.S)  # the last: fast COCOeval runs on _C
# caffe2 itself is not listed: "No module named 'caffe2'" means `import detectron2.export` broke,
# a gap of the installed sources (only tests of the Caffe2 API itself need the package)
NEEDS_PACKAGE = re.compile(r"No module named '(black|shapely|onnx|pytest_\w+)'|"
                           r"cannot import name 'Caffe2\w*' from 'detectron2\.export'", re.S)
NEEDS_DATA = re.compile(r"FileNotFoundError|No such file or directory|datasets/|URLError|"
                        r"HTTPError|urlopen|Connection|Temporary failure in name resolution|"
                        r"dl\.fbaipublicfiles|download|Network is unreachable|getaddrinfo|"
                        r"DETECTRON2_DATASETS|does not exist|detectron2\.projects", re.S)


CLASSES = ("needs _C", "needs an optional package", "needs data or network", "other")


def classify(text: str) -> str:
    """One of ``CLASSES`` for a failure's message and traceback."""
    if NEEDS_C.search(text):
        return "needs _C"
    if NEEDS_PACKAGE.search(text):
        return "needs an optional package"
    if NEEDS_DATA.search(text):
        return "needs data or network"
    return "other"


def first_error_line(text: str) -> str:
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("E ") and len(s) > 2:
            return s[2:].strip()[:200]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:200]


def run_suite(tests_dir: str, timeout: int):
    """(outcomes {test id: (status, text)}, wall seconds, pytest exit code)."""
    with tempfile.TemporaryDirectory(prefix="d2_tests_") as work:
        dst = os.path.join(work, "tests")
        shutil.copytree(tests_dir, dst)
        xml = os.path.join(work, "junit.xml")
        cmd = [sys.executable, "-m", "pytest", dst, "-q", "-p", "no:cacheprovider",
               "--junitxml", xml, "-o", "junit_family=xunit1", "--continue-on-collection-errors"]
        t0 = datetime.datetime.now()
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        wall = (datetime.datetime.now() - t0).total_seconds()
        if not os.path.isfile(xml):
            raise SystemExit("pytest wrote no report (exit {}):\n{}".format(
                proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
        outcomes = {}
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = "{}::{}".format(case.get("classname", ""), case.get("name", ""))
            status, text = "passed", ""
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    status = "skipped" if tag == "skipped" else "failed"
                    text = (el.get("message") or "") + "\n" + (el.text or "")
                    break
            outcomes[name] = (status, text)
    return outcomes, wall, proc.returncode


def report(outcomes, wall, tests_dir) -> str:
    import detectron2
    import torch

    counts = collections.Counter(s for s, _ in outcomes.values())
    failed = {k: t for k, (s, t) in outcomes.items() if s == "failed"}
    by_class = collections.defaultdict(list)
    for k, t in sorted(failed.items()):
        by_class[classify(t)].append((k, first_error_line(t)))
    lines = [
        "# detectron2's own test suite on this install",
        "",
        "- command: `python tools/run_detectron2_tests.py --tests {} ...`".format(tests_dir),
        "- date: " + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "- detectron2 {} from {}".format(detectron2.__version__,
                                         os.path.dirname(detectron2.__file__)),
        "- python {}, torch {}, {} CPUs, {}".format(platform.python_version(), torch.__version__,
                                                    os.cpu_count(), platform.platform()),
        "- wall time: {:.0f} s".format(wall),
        "",
        "| outcome | tests |",
        "|---|---:|",
        "| passed | {} |".format(counts["passed"]),
        "| skipped | {} |".format(counts["skipped"]),
    ]
    for cls in CLASSES:
        lines.append("| failed: {} | {} |".format(cls, len(by_class[cls])))
    for cls in ("other",) + CLASSES[:-1]:
        if by_class[cls]:
            lines += ["", "## Failed: " + cls, "", "| test | first error line |", "|---|---|"]
            lines += ["| `{}` | {} |".format(k, e.replace("|", "\\|")) for k, e in by_class[cls]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", required=True, help="detectron2's tests/ folder (v0.6 tag)")
    ap.add_argument("--out", default="", help="markdown report (default: print it)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds for the whole suite")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.tests):
        ap.error("--tests {} is not a folder".format(a.tests))
    outcomes, wall, _rc = run_suite(a.tests, a.timeout)
    text = report(outcomes, wall, a.tests)
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.out)
        print("wrote " + a.out)
    print(text)
    n_other = sum(1 for s, t in outcomes.values() if s == "failed" and classify(t) == "other")
    return 1 if n_other else 0


if __name__ == "__main__":
    sys.exit(main())
