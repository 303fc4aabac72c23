"""The package's layers: utils < (data, modeling) < tracking < inference < evaluation.

Checked on the source (every import statement, function-local ones included), so that a hidden
cycle cannot come back; plus the grep-level rules on detectron2 private calls and on references
to documents that do not exist.
"""

import ast
import os
import re

import pytest

from tests.helpers import REPO_ROOT

PKG = os.path.join(REPO_ROOT, "maskprop_d2")

# a subpackage may import only from subpackages of a lower rank (or its own)
RANK = {"utils": 0, "config": 1, "data": 1, "modeling": 1, "checkpoint": 1, "solver": 1,
        "tracking": 2, "inference": 3, "evaluation": 4}  # fmt: skip


def _modules():
    for dirpath, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, REPO_ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                yield path, rel


def _imported(path, modname):
    """Absolute names of the maskprop_d2 modules that a file imports."""
    tree = ast.parse(open(path).read(), path)
    is_pkg = path.endswith("__init__.py")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = modname if is_pkg else modname[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out += ["{}.{}".format(mod, a.name) for a in node.names]
    return [m for m in out if m.split(".")[0] == "maskprop_d2"]


def _layer(name):
    parts = name.split(".")
    return parts[1].removesuffix(".py") if len(parts) > 1 else None


def test_no_module_below_evaluation_imports_it():
    offenders = []
    for path, mod in _modules():
        if len(mod) > 1 and mod[1] == "evaluation":
            continue
        for m in _imported(path, mod):
            if m.startswith("maskprop_d2.evaluation"):
                offenders.append("{} imports {}".format(".".join(mod), m))
    assert offenders == []


def test_layers_import_only_downwards():
    offenders = []
    for path, mod in _modules():
        own = mod[1] if len(mod) > 1 else None
        if own not in RANK:
            continue
        for m in _imported(path, mod):
            other = _layer(m)
            if other in RANK and other != own and RANK[other] >= RANK[own]:
                offenders.append("{} imports {}".format(".".join(mod), m))
    assert offenders == []


def test_oracle_lives_outside_the_library():
    assert not os.path.exists(os.path.join(PKG, "inference", "oracle.py"))
    assert os.path.isfile(os.path.join(REPO_ROOT, "tools", "oracle.py"))


def _code_files():
    for top in ("maskprop_d2", "demo", "tools"):
        for dirpath, _, files in os.walk(os.path.join(REPO_ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)
    yield os.path.join(REPO_ROOT, "train_net.py")


@pytest.mark.parametrize(
    "pattern", [r"_forward_box\(", r"mask_head\.layers\(", r"_do_register\(", r"sys\.orig_argv"]
)
def test_no_private_detectron2_calls(pattern):
    hits = [
        "{}:{}".format(os.path.relpath(p, REPO_ROOT), i)
        for p in _code_files()
        for i, line in enumerate(open(p), 1)
        if re.search(pattern, line)
    ]
    assert hits == []


def test_references_point_to_files_that_exist():
    """No DESIGN.md (it is not in the repository), and every docs/*.md named in code exists."""
    files = list(_code_files()) + [os.path.join(REPO_ROOT, "README.md")]
    problems = []
    for p in files:
        text = open(p).read()
        if "DESIGN.md" in text:
            problems.append("{}: DESIGN.md".format(os.path.relpath(p, REPO_ROOT)))
        for doc in set(re.findall(r"docs/[\w./-]+\.md", text)):
            if not os.path.isfile(os.path.join(REPO_ROOT, doc)):
                problems.append("{}: {}".format(os.path.relpath(p, REPO_ROOT), doc))
    assert problems == []
