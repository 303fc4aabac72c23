"""train_net end to end: --resume past a truncated checkpoint, bad training data and an
unwritable OUTPUT_DIR stop the run before iteration 0 with a message naming the problem."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, TINY_CONFIG

OPTS = ["SOLVER.STEPS", "()", "SOLVER.IMS_PER_BATCH", 1, "DATALOADER.NUM_WORKERS", 0,
        "DATASETS.TEST", "()"]


def _run(args, cwd, root):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MASKPROP_SYNTHETIC_ROOT=str(root))
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train_net.py"), "--config-file", TINY_CONFIG]
        + [str(a) for a in args],
        capture_output=True, text=True, cwd=str(cwd), env=env, timeout=600,
    )


@pytest.fixture
def synthetic(synthetic_dataset, tmp_path):
    """(working directory of the run: this test's tmp_path, the shared synthetic dataset)."""
    return tmp_path, synthetic_dataset


@pytest.mark.slow
def test_resume_past_a_truncated_checkpoint(synthetic):
    work, root = synthetic
    out = work / "out_resume"
    opts = OPTS + ["OUTPUT_DIR", out, "SOLVER.CHECKPOINT_PERIOD", 1]
    proc = _run(opts + ["SOLVER.MAX_ITER", 2], work, root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]
    final = out / "model_final.pth"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 3])  # truncated
    proc = _run(["--resume"] + opts + ["SOLVER.MAX_ITER", 3], work, root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "cannot read checkpoint" in log and str(final) in log, log[-3000:]
    assert "resumed from" in log and "model_0000001.pth" in log, log[-3000:]


@pytest.mark.slow
def test_missing_frame_file_stops_before_iteration_0(synthetic, tmp_path):
    work, root = synthetic
    # a copy of the train split's JSON that lists one frame file that is not on disk
    data = json.loads((root / "train.json").read_text())
    data["videos"][1]["file_names"][3] = "nowhere/00003.jpg"
    bad_root = tmp_path / "bad"
    os.makedirs(bad_root)
    os.symlink(root / "train", bad_root / "train")
    os.symlink(root / "valid", bad_root / "valid")
    (bad_root / "train.json").write_text(json.dumps(data))
    os.symlink(root / "valid.json", bad_root / "valid.json")
    out = tmp_path / "out"
    proc = _run(OPTS + ["OUTPUT_DIR", out, "SOLVER.MAX_ITER", 2], work, bad_root)
    assert proc.returncode != 0
    err = proc.stderr
    assert "DatasetValidationError" in err and "nowhere/00003.jpg" in err, err[-3000:]
    assert f"video id {data['videos'][1]['id']}" in err and "frame 3" in err, err[-3000:]
    assert "iter: 0" not in proc.stdout + err and not (out / "model_final.pth").exists()


@pytest.mark.slow
def test_unwritable_output_dir_is_refused_first(synthetic, tmp_path):
    work, root = synthetic
    (tmp_path / "a_file").write_text("x")
    proc = _run(OPTS + ["OUTPUT_DIR", tmp_path / "a_file" / "out"], work, root)
    assert proc.returncode != 0
    assert "OUTPUT_DIR" in proc.stderr and "a_file" in proc.stderr, proc.stderr[-3000:]
    assert "Model:" not in proc.stdout + proc.stderr  # stopped before the model was built
