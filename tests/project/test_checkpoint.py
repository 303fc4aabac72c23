"""Checkpoints survive kills: atomic saves, --resume falls back to a readable file."""
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from maskprop_d2.checkpoint import AtomicCheckpointer, CheckpointError, check_output_dir


class _State:
    """A checkpointable like the trainer: an iteration counter."""

    def __init__(self):
        self.iteration = -1

    def state_dict(self):
        return {"iteration": self.iteration}

    def load_state_dict(self, d):
        self.iteration = d["iteration"]


def _ckpt(folder):
    torch.manual_seed(0)
    state = _State()
    return AtomicCheckpointer(nn.Linear(4, 3), str(folder), trainer=state), state


def _save(ck, state, it):
    state.iteration = it
    with torch.no_grad():
        ck.model.weight.fill_(float(it))
    ck.save(f"model_{it:07d}")
    time.sleep(0.02)  # distinct modification times


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    ck, state = _ckpt(tmp_path)
    _save(ck, state, 1)

    def failing_save(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # e.g. SIGINT in the middle of torch.save

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000002")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"


def test_resume_falls_back_past_a_truncated_checkpoint(tmp_path, caplog):
    ck, state = _ckpt(tmp_path)
    for it in (4, 9, 14):
        _save(ck, state, it)
    newest = tmp_path / "model_0000014.pth"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as by a full disk
    ck2, state2 = _ckpt(tmp_path)
    with caplog.at_level(logging.WARNING):
        ck2.resume_or_load("", resume=True)
    assert state2.iteration == 9
    assert ck2.model.weight[0, 0].item() == 9.0
    assert str(newest) in caplog.text
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"


def test_resume_with_empty_tagged_checkpoint(tmp_path, caplog):
    ck, state = _ckpt(tmp_path)
    _save(ck, state, 3)
    (tmp_path / "model_0000007.pth").write_bytes(b"")  # what a kill -9 left before atomic saves
    (tmp_path / "last_checkpoint").write_text("model_0000007.pth")
    ck2, state2 = _ckpt(tmp_path)
    with caplog.at_level(logging.WARNING):
        ck2.resume_or_load("", resume=True)
    assert state2.iteration == 3
    assert "model_0000007.pth" in caplog.text


def test_resume_stops_when_no_checkpoint_is_readable(tmp_path):
    (tmp_path / "model_0000001.pth").write_bytes(b"garbage")
    (tmp_path / "model_0000002.pth").write_bytes(b"")
    (tmp_path / "last_checkpoint").write_text("model_0000002.pth")
    ck, _ = _ckpt(tmp_path)
    with pytest.raises(CheckpointError) as e:
        ck.resume_or_load("", resume=True)
    assert "model_0000001.pth" in str(e.value) and "model_0000002.pth" in str(e.value)


def test_no_checkpoint_loads_the_weights(tmp_path):
    ck, state = _ckpt(tmp_path / "out")
    os.makedirs(tmp_path / "out")
    assert ck.resume_or_load("", resume=True) == {}
    assert state.iteration == -1


def test_check_output_dir(tmp_path):
    check_output_dir(str(tmp_path / "new" / "dir"))
    assert os.path.isdir(tmp_path / "new" / "dir") and not os.listdir(tmp_path / "new" / "dir")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="OUTPUT_DIR .*file"):
        check_output_dir(str(tmp_path / "file" / "sub"))
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(OSError, match="not a writable folder"):
            check_output_dir(str(ro))


# A training-like loop in a subprocess: one checkpoint per iteration, written slowly (in small
# chunks) so that SIGKILL lands in the middle of a save most of the time.
_LOOP = textwrap.dedent(
    """
    import io, sys, time, torch
    from torch import nn
    from detectron2.engine.hooks import PeriodicCheckpointer
    from maskprop_d2.checkpoint import AtomicCheckpointer

    real_save = torch.save
    def slow_save(obj, f):
        buf = io.BytesIO()
        real_save(obj, buf)
        data = buf.getvalue()
        for i in range(0, len(data), 16384):
            f.write(data[i:i + 16384])
            f.flush()
            time.sleep(0.002)
    torch.save = slow_save

    class State:
        iteration = 0
        def state_dict(self):
            return {"iteration": self.iteration}
        def load_state_dict(self, d):
            self.iteration = d["iteration"]

    state = State()
    model = nn.Linear(256, 1024)  # ~1 MiB: ~130 ms a save
    ck = AtomicCheckpointer(model, sys.argv[1], trainer=state)
    ck.resume_or_load("", resume=True)
    periodic = PeriodicCheckpointer(ck, period=1, max_to_keep=3)
    it = state.iteration
    print("START", it, flush=True)
    while True:
        it += 1
        state.iteration = it
        with torch.no_grad():
            model.bias.fill_(float(it))
        periodic.step(it)
    """
)


def test_kill_9_during_training_and_saves(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    rng = random.Random(0)
    last_iter = 0
    killed_in_save = 0
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-c", _LOOP, str(out)], stdout=subprocess.PIPE, env=env, text=True
        )
        start = proc.stdout.readline().split()
        assert start[0] == "START", start
        assert int(start[1]) >= last_iter  # resumed from the newest whole checkpoint
        time.sleep(0.6 + rng.random() * 0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pths = sorted(p for p in os.listdir(out) if p.endswith(".pth"))
        assert pths, os.listdir(out)
        killed_in_save += any(p.startswith(".tmp-") for p in os.listdir(out))
        for p in pths:  # every visible checkpoint is whole
            d = torch.load(out / p, map_location="cpu", weights_only=False)
            assert float(d["model"]["bias"][0]) == d["iteration"]
        last_iter = max(
            torch.load(out / p, map_location="cpu", weights_only=False)["iteration"] for p in pths
        )
        assert (out / "last_checkpoint").read_text() in pths
    assert killed_in_save >= 1  # (saves take ~all the loop's time: a kill lands in one)
    ck, state = _ckpt(out)
    ck.model = nn.Linear(256, 1024)
    ck.resume_or_load("", resume=True)
    assert state.iteration == last_iter
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]  # cleaned on resume
