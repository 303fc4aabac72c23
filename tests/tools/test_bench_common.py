"""tools/bench_common.py: the benchmark harness (config, frames, subprocess isolation, reports)."""

import os
import sys

from tests.helpers import TINY_CONFIG, load_script

bc = load_script("bench_common", "tools", "bench_common.py")


def test_load_cfg_is_train_net_setup_config_on_cpu():
    from maskprop_d2 import get_maskprop_cfg

    cfg = bc.load_cfg("tiny", ["INPUT.CLIP.HALF_LENGTH", 2], weights="w.pth")
    ref = get_maskprop_cfg(TINY_CONFIG, ["INPUT.CLIP.HALF_LENGTH", 2])
    assert cfg.INPUT.CLIP.HALF_LENGTH == 2 and cfg.MODEL.WEIGHTS == "w.pth"
    assert cfg.MODEL.DEVICE == "cpu" and cfg.MODEL.RESNETS.DEPTH == ref.MODEL.RESNETS.DEPTH


def test_synthetic_frames_are_deterministic_and_sized():
    a = list(bc.video_frames("synthetic", 3, (64, 48)))
    b = list(bc.video_frames("synthetic", 3, (64, 48)))
    assert len(a) == 3 and a[0].shape == (48, 64, 3) and a[0].dtype.name == "uint8"
    assert all((x == y).all() for x, y in zip(a, b, strict=True))


def test_run_isolated_returns_the_child_result_and_its_own_peak_rss(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(
        "import sys; sys.path.insert(0, {!r})\n"
        "import bench_common as bc\n"
        "x = bytearray(200 * 2**20)\n"
        "bc.emit_result({{'n': len(x) // 2**20}})\n".format(os.path.dirname(bc.__file__))
    )
    r = bc.run_isolated([str(script)])
    assert r["n"] == 200 and r["peak_rss_mib"] >= 200 and r["cpu_s"] >= 0 and r["wall_s"] > 0
    script.write_text("raise SystemExit(3)\n")
    try:
        bc.run_isolated([sys.executable, str(script)])
    except RuntimeError as e:
        assert "child.py" in str(e)
    else:
        raise AssertionError("a failing child must raise")


def test_report_has_environment_table_and_is_written_whole(tmp_path):
    rep = bc.Report("Title")
    rep.table(["a", "b"], [["x", 1]], "caption:")
    out = tmp_path / "r.md"
    rep.save(str(out))
    text = out.read_text()
    assert text.startswith("# Title\n") and "- git: " in text and "load average" in text
    assert "collect_env_info" in text and "PyTorch" in text
    assert "| a | b |\n|---|---:|\n| x | 1 |" in text
    assert not list(tmp_path.glob("*.tmp"))
