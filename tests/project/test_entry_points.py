"""The command-line programs print no warnings on a normal run, and the library filters none."""

import json
import os
import subprocess
import sys
import warnings

import pytest

from maskprop_d2 import _cli_warnings
from tests.helpers import REPO_ROOT, TINY_CONFIG


def _run(args, tmp, **env):
    full_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env)
    full_env.pop("PYTHONWARNINGS", None)  # the programs' defaults, not the caller's
    proc = subprocess.run(
        [sys.executable] + [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=str(tmp),
        env=full_env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _assert_quiet(proc):
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("entry_points")


@pytest.fixture(scope="module")
def synthetic(workdir):
    """``python -m maskprop_d2.data.synthetic`` writing a dataset of its own (the run checked);
    the other programs run on the session's shared synthetic dataset."""
    root = workdir / "synthetic"
    args = ["-m", "maskprop_d2.data.synthetic", "--out", root, "--num-train", 2]
    proc = _run(args + ["--num-val", 1, "--length", 6], workdir)
    return root, proc


@pytest.fixture(scope="module")
def trained(workdir, synthetic_dataset):
    root = synthetic_dataset
    out = workdir / "train"
    opts = ["OUTPUT_DIR", out, "SOLVER.MAX_ITER", 2, "SOLVER.STEPS", "()"]
    opts += ["SOLVER.IMS_PER_BATCH", 1, "DATALOADER.NUM_WORKERS", 0]
    args = [os.path.join(REPO_ROOT, "train_net.py"), "--config-file", TINY_CONFIG] + opts
    proc = _run(args, workdir, MASKPROP_SYNTHETIC_ROOT=str(root))
    return out, proc


@pytest.mark.slow
def test_synthetic_cli_is_quiet(synthetic):
    root, proc = synthetic
    assert (root / "valid.json").is_file()
    _assert_quiet(proc)


@pytest.mark.slow
def test_train_net_is_quiet(trained):
    out, proc = trained
    assert (out / "model_final.pth").is_file()
    assert (out / "inference" / "results.json").is_file()  # trained, then evaluated on val
    _assert_quiet(proc)


@pytest.mark.slow
def test_demo_is_quiet(workdir, synthetic_dataset, trained):
    root = synthetic_dataset
    out, _ = trained
    args = [os.path.join(REPO_ROOT, "demo", "demo.py"), "--config-file", TINY_CONFIG]
    args += ["--input", root / "valid" / "JPEGImages" / "valid_00000"]
    args += ["--output", workdir / "demo.mp4", "--json", workdir / "demo.json", "--overwrite"]
    args += ["--opts", "MODEL.WEIGHTS", out / "model_final.pth"]
    proc = _run(args, workdir)
    assert (workdir / "demo.json").is_file()
    _assert_quiet(proc)


@pytest.mark.slow
def test_evaluation_cli_is_quiet(workdir, synthetic_dataset, trained):
    root = synthetic_dataset
    out, _ = trained
    stats = workdir / "stats.json"
    args = ["-m", "maskprop_d2.evaluation", root / "valid.json"]
    proc = _run(args + [out / "inference" / "results.json", "--json", stats], workdir)
    assert len(json.loads(stats.read_text())) > 0
    assert "Average Precision" in proc.stdout
    _assert_quiet(proc)


def test_library_import_installs_no_filter():
    # (other libraries add filters of their own at import: only ours are looked for)
    code = (
        "import warnings\n"
        "import maskprop_d2\n"
        "from maskprop_d2._cli_warnings import KNOWN_THIRD_PARTY_WARNINGS as known\n"
        "ours = {m for _, m, _ in known}\n"
        "print(sum(f[1] is not None and f[1].pattern in ours for f in warnings.filters))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "0"
    # and the same check sees them once a program asked for them
    code = code.replace("import maskprop_d2\n", "import maskprop_d2._cli_warnings as w\n"
                        "w.quiet_known_warnings()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(len(_cli_warnings.KNOWN_THIRD_PARTY_WARNINGS))


@pytest.mark.parametrize(
    "module", ["maskprop_d2", "maskprop_d2.data.synthetic", "maskprop_d2.evaluation.__main__"]
)
def test_package_and_its_cli_modules_import_no_torch(module):
    """Light by their imports, however the process started; the registrations come with the
    config helpers."""
    code = (
        "import sys, importlib; importlib.import_module({!r}); "
        "print(sorted({{'torch', 'detectron2'}} & set(sys.modules)))".format(module)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"


def test_the_config_helpers_register_the_components():
    code = (
        "import maskprop_d2\n"
        "from detectron2.data import DatasetCatalog\n"
        "from detectron2.modeling import META_ARCH_REGISTRY\n"
        "assert 'synthetic_ytvis_train' not in DatasetCatalog.list()\n"
        "cfg = maskprop_d2.get_maskprop_cfg()\n"
        "assert 'MaskProp' in META_ARCH_REGISTRY and 'synthetic_ytvis_train' in DatasetCatalog\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]


def _emit(category, message, module):
    warnings.warn_explicit(message, category, "x.py", 1, module=module)


def test_known_warnings_are_filtered_by_message_and_module(monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", [])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _cli_warnings.quiet_known_warnings()
        jit = "`torch.jit.script` is deprecated. Please switch to `torch.compile`."
        _emit(FutureWarning, jit, "torch.jit._script")
        mesh = "torch.meshgrid: in an upcoming release, it will be required to pass ..."
        _emit(UserWarning, mesh, "torch.functional")
        amp = "`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use ..."
        _emit(FutureWarning, amp, "detectron2.engine.train_loop")
        assert seen == []
        _emit(FutureWarning, jit, "my_code")  # same message, another module: shown
        _emit(UserWarning, "something else", "torch.functional")  # another message: shown
        _emit(DeprecationWarning, jit, "torch.jit._script")  # another category: shown
        assert len(seen) == 3


def test_users_warning_options_win(monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", ["default"])
    with warnings.catch_warnings():
        before = list(warnings.filters)
        assert not _cli_warnings.quiet_known_warnings()
        assert warnings.filters == before
