"""Abuse cases of the synthetic generator: ``--overwrite`` only replaces its own datasets, and
an interrupted run (SIGINT, SIGTERM) leaves nothing behind and ends with one line."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from maskprop_d2.data import synthetic as syn
from tests.helpers import REPO_ROOT

SMALL = ["--num-train", "1", "--num-val", "1", "--length", "2", "--height", "32", "--width", "32"]


def _tree(path):
    """{relative path: bytes} of every file under ``path`` (or of the file itself)."""
    if os.path.isfile(path):
        return {"": open(path, "rb").read()}
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, path)] = open(p, "rb").read()
    return out


def _user_folders(tmp_path):
    """Things a user may point --out at by mistake (none was written by the generator)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("my work")
    plain = tmp_path / "notes.txt"
    plain.write_text("keep me")
    # a look-alike: the dataset's file names, but JSONs this generator did not write
    fake = tmp_path / "fake"
    (fake / "train").mkdir(parents=True)
    (fake / "train.json").write_text(json.dumps({"videos": [], "info": {"generator": "me"}}))
    (fake / "valid.json").write_text("{}")
    # a real dataset with a user file added inside it
    mixed = tmp_path / "mixed"
    syn.main(["--out", str(mixed)] + SMALL)
    (mixed / "results.json").write_text("[]")
    # a real dataset whose split folder got a user file
    mixed2 = tmp_path / "mixed2"
    syn.main(["--out", str(mixed2)] + SMALL)
    (mixed2 / "train" / "notes.md").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(docs)
    return [docs, plain, fake, mixed, mixed2, link]


@pytest.mark.parametrize("overwrite", [False, True])
def test_overwrite_never_replaces_foreign_content(tmp_path, capsys, overwrite):
    targets = _user_folders(tmp_path)
    for target in targets:
        before = _tree(str(target))
        capsys.readouterr()
        rc = syn.main(["--out", str(target)] + SMALL + (["--overwrite"] if overwrite else []))
        err = capsys.readouterr().err
        assert rc == 2, target
        assert str(target) in err and "not a dataset of this generator" in err, err
        assert "pass --overwrite" not in err and "use --overwrite" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert _tree(str(target)) == before, target
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(t.name for t in targets)


def test_overwrite_replaces_its_own_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert syn.main(["--out", str(out), "--seed", "1"] + SMALL) == 0
    first = _tree(str(out))
    capsys.readouterr()
    assert syn.main(["--out", str(out), "--seed", "2"] + SMALL) == 2  # differs: needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert syn.main(["--out", str(out), "--seed", "2", "--overwrite"] + SMALL) == 0
    assert _tree(str(out)) != first
    assert os.listdir(tmp_path) == ["ds"]
    # an empty folder is filled without --overwrite
    (tmp_path / "empty").mkdir()
    assert syn.main(["--out", str(tmp_path / "empty")] + SMALL) == 0
    assert (tmp_path / "empty" / "train.json").is_file()


def _default_signals():
    """In the child, before exec: SIGINT/SIGTERM handled by default and not blocked. A shell
    running the suite in the background starts it with SIGINT ignored, and a signal mask left
    by an earlier in-process call would be inherited too; either would make the child deaf."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(tmp_path, sig):
    out = tmp_path / "ds"
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskprop_d2.data.synthetic", "--out", str(out),
         "--num-train", "2000", "--num-val", "1", "--length", "4"],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_signals)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".ds.tmp-")
                                              for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the writing of frames
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == f"interrupted: nothing written to {out}", err
    assert os.listdir(tmp_path) == []
