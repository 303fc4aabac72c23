"""Every command the README and the user docs give runs as written: each script or module exists
and lists every flag it is given in its ``--help``, and each ``make`` target exists."""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import REPO_ROOT, repo_path

DOCS = ["README.md", "docs/usage.md", "docs/install.md"]


def command_lines(text):
    """The shell commands of a markdown text: the lines of its ```bash blocks (continuations
    joined, comments cut) and the inline code spans that start with ``python`` or ``make``."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = " ".join(re.sub(r"\s#\s.*$", "", line).split())
            if line:
                out.append(line)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if re.match(r"((\w+=\S+ )*)(python|make) ", span):
            out.append(span)
    return out


def parse_command(line):
    """[(program, flags)] of one command line, ``program`` being ("script", path), ("module",
    name) or ("make", target); ``flags`` the ``--options`` given to a python program (those after
    ``--opts`` are config overrides, not the program's)."""
    found = []
    for part in re.split(r"&&|;", line):
        tokens = [t.strip("[]") for t in shlex.split(part)]
        while tokens and re.match(r"^\w+=", tokens[0]):  # VAR=value prefixes
            tokens = tokens[1:]
        if not tokens:
            continue
        if tokens[0] == "make":
            found += [(("make", t), []) for t in tokens[1:] if "=" not in t]
            continue
        if not re.fullmatch(r"python3?", tokens[0]) or len(tokens) < 2:
            continue
        if tokens[1].startswith("-") and tokens[1] != "-m":  # interpreter options: not a program
            continue
        if tokens[1] == "-m":
            program, args = ("module", tokens[2]), tokens[3:]
        else:
            program, args = ("script", tokens[1]), tokens[2:]
        if "--opts" in args:
            args = args[: args.index("--opts") + 1]
        found.append((program, sorted({a.split("=")[0] for a in args if a.startswith("--")})))
    return found


def test_parse_command_reads_flags_modules_and_targets():
    line = "OMP_NUM_THREADS=1 python tools/x.py --a 1 [--b B] --opts --not-a-flag V && make data"
    assert parse_command(line) == [(("script", "tools/x.py"), ["--a", "--b", "--opts"]),
                                   (("make", "data"), [])]  # fmt: skip
    assert parse_command("python -m maskprop_d2.evaluation GT.json r.json --identity") == [
        (("module", "maskprop_d2.evaluation"), ["--identity"])
    ]
    assert parse_command("python -W ignore x.py") == []
    text = "Run `python demo/demo.py --fps 6` or\n```bash\npython a.py --x \\\n  --y 2  # note\n```"
    assert command_lines(text) == ["python a.py --x --y 2", "python demo/demo.py --fps 6"]


def _help(program):
    kind, name = program
    cmd = [sys.executable] + (["-m", name] if kind == "module" else [repo_path(name)])
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd + ["--help"], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=env, timeout=300)  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_every_documented_command_exists_with_its_flags():
    wanted = {}
    for doc in DOCS:
        with open(repo_path(doc), encoding="utf-8") as f:
            for line in command_lines(f.read()):
                for program, flags in parse_command(line):
                    wanted.setdefault(program, {}).update({flag: doc for flag in flags})
    with open(repo_path("Makefile"), encoding="utf-8") as f:
        makefile = f.read()
    problems = []
    programs = []
    for (kind, name), flags in sorted(wanted.items()):
        if kind == "make":
            if not re.search(r"^{}:".format(re.escape(name)), makefile, re.M):
                problems.append("make {}: no such target".format(name))
        elif kind == "script" and not os.path.isfile(repo_path(name)):
            problems.append("{}: no such script".format(name))
        elif kind == "module" and importlib.util.find_spec(name) is None:
            problems.append("python -m {}: no such module".format(name))
        else:
            programs.append(((kind, name), flags))
    assert len(programs) >= 4, programs  # the parser found the commands
    with ThreadPoolExecutor(2) as pool:
        helps = list(pool.map(lambda p: _help(p[0]), programs))
    for ((_, name), flags), (rc, text) in zip(programs, helps, strict=True):
        if rc != 0:
            problems.append("{} --help failed: {}".format(name, text[-500:]))
            continue
        for flag, doc in sorted(flags.items()):
            if not re.search(r"(?<![\w-]){}(?![\w-])".format(re.escape(flag)), text):
                problems.append("{}: {} {} is not an option of it".format(doc, name, flag))
    assert problems == []


@pytest.mark.parametrize("doc", DOCS)
def test_docs_link_to_files_that_exist(doc):
    with open(repo_path(doc), encoding="utf-8") as f:
        text = f.read()
    base = os.path.dirname(repo_path(doc))
    missing = [
        target
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        if "://" not in target and not os.path.exists(os.path.join(base, target))
    ]
    assert missing == []
