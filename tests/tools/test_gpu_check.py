"""tools/gpu_check.py: its pieces on the CPU (the GPU run itself needs a CUDA machine)."""

import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO_ROOT, load_script


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check", "tools", "gpu_check.py")


def test_parse_pytest_summary(gpu_check):
    out = "....\n=== 3 failed, 170 passed, 2 skipped, 1 error in 301.2s (0:05:01) ===\n"
    assert gpu_check.parse_pytest_summary(out) == {
        "failed": 3,
        "passed": 170,
        "skipped": 2,
        "errors": 1,
    }
    assert gpu_check.parse_pytest_summary("175 passed in 1.0s\n") == {"passed": 175}
    assert gpu_check.parse_pytest_summary("") == {}


def test_prop_head_parity_passes_on_cpu_and_catches_a_wrong_head(gpu_check):
    sizes = [(2, 3, 17, 21)]  # at least ROI_SIZE (16) a side
    res = gpu_check.prop_head_parity("cpu", sizes)
    assert res["ok"], res
    assert {r["mode"] for r in res["rows"]} == {"full frame", "ROI 16"}
    # float32 against the float64 reference: small but not zero
    assert all(0 < r["forward_err"] < r["forward_allowed"] for r in res["rows"])

    def wrong_head(roi_size):
        head = gpu_check.make_head(roi_size)
        with torch.no_grad():
            head.deform_weight.mul_(1.001)  # a 0.1% error in one weight tensor
        return head

    bad = gpu_check.prop_head_parity("cpu", sizes, candidate_head=wrong_head)
    assert not bad["ok"]
    assert not any(r["ok"] for r in bad["rows"])


def test_cuda_without_cuda_is_a_clear_error(gpu_check, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_cpu_run_writes_a_passing_report(tmp_path):
    out = tmp_path / "report.md"
    cmd = [sys.executable, os.path.join(REPO_ROOT, "tools", "gpu_check.py"), "--device", "cpu"]
    cmd += ["--quick", "--skip-tests", "--out", str(out), "--data", str(tmp_path / "syn")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]
    text = out.read_text()
    assert "**Overall: PASS**" in text
    for section in (
        "## 1. Test suite",
        "## 2. Propagation head",
        "## 3. AMP training",
        "## 4. Streaming inference",
        "## 5. Two-process DDP",
    ):
        assert section in text
    assert "| bfloat16 | no | 3 (1) |" in text  # CPU: bfloat16 autocast, no GradScaler
    assert "MaskProp / Mask R-CNN speed ratio" in text
