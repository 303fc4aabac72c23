"""Whole or absent outputs: the demo and the evaluator CLI check every output path
before working, and leave nothing behind on errors, Ctrl-C or SIGTERM."""
import json
import os
import signal
import subprocess

import pytest

from maskprop_d2.evaluation.__main__ import main as eval_main
from tests.helpers import TINY_CONFIG, load_script
from tests.video_helpers import write_video


def _demo_module():
    return load_script("maskprop_demo_reliability", "demo", "demo.py")


def _run(capsys, mod, *args, config=TINY_CONFIG):
    rc = mod.main(["--config-file", str(config)] + [str(a) for a in args])
    return subprocess.CompletedProcess(args, rc, "", capsys.readouterr().err)


def _leftovers(folder):
    return [p for p in os.listdir(folder) if p.startswith(".")]


@pytest.fixture
def video(tmp_path):
    src = tmp_path / "in" / "in.mp4"
    src.parent.mkdir()
    write_video(src, n=6)
    return src


def test_unwritable_json_is_refused_before_the_first_frame(tmp_path, tiny_weights, video, capsys):
    mod = _demo_module()
    frames_read = []
    real_draw = mod.draw_frame
    mod.draw_frame = lambda *a: frames_read.append(1) or real_draw(*a)
    out = tmp_path / "out.mp4"
    (tmp_path / "tracks.json").mkdir()  # a folder where the JSON should go
    r = _run(capsys, mod, "--video-input", video, "--output", out, "--json",
             tmp_path / "tracks.json", "--overwrite", "--opts", "MODEL.WEIGHTS", tiny_weights)
    assert r.returncode == 2 and "tracks.json" in r.stderr, r.stderr[-2000:]
    assert not out.exists() and not frames_read and not _leftovers(tmp_path)
    if os.path.isdir("/proc"):  # a folder nobody can create files in, even root
        r = _run(capsys, mod, "--video-input", video, "--output", out, "--json",
                 "/proc/maskprop_tracks.json", "--opts", "MODEL.WEIGHTS", tiny_weights)
        assert r.returncode == 2 and "/proc/maskprop_tracks.json" in r.stderr, r.stderr[-2000:]
        assert not out.exists() and not frames_read and not _leftovers(tmp_path)


def test_both_outputs_published_together(tmp_path, tiny_weights, video, capsys):
    out, js = tmp_path / "out.mp4", tmp_path / "out.json"
    r = _run(capsys, _demo_module(), "--video-input", video, "--output", out, "--json", js,
             "--opts", "MODEL.WEIGHTS", tiny_weights)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.stat().st_size > 0 and isinstance(json.loads(js.read_text()), list)
    assert not _leftovers(tmp_path)


def test_corrupt_weights_and_config_are_clear_errors(tmp_path, video, capsys):
    mod = _demo_module()
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(3000))
    out = tmp_path / "out.mp4"
    r = _run(capsys, mod, "--video-input", video, "--output", out, "--opts", "MODEL.WEIGHTS", bad)
    assert r.returncode == 2 and "corrupt.pth" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not _leftovers(tmp_path)

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("MODEL: [unclosed\n")
    r = _run(capsys, mod, "--video-input", video, "--output", out, "--opts", "MODEL.WEIGHTS",
             bad, config=cfg)
    assert r.returncode == 2 and "bad.yaml" in r.stderr, r.stderr[-2000:]
    cfg.write_text(f"_BASE_: {TINY_CONFIG}\nMODEL:\n  NO_SUCH_KEY: 1\n")
    r = _run(capsys, mod, "--video-input", video, "--output", out, "--opts", "MODEL.WEIGHTS",
             bad, config=cfg)
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "NO_SUCH_KEY" in r.stderr
    r = _run(capsys, mod, "--video-input", video, "--output", out, "--opts", "MODEL.NOPE", "1")
    assert r.returncode == 2 and "MODEL.NOPE" in r.stderr
    assert not out.exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_leave_nothing_behind(tmp_path, tiny_weights, video, capsys, sig, rc, request):
    mod = _demo_module()
    real_draw = mod.draw_frame
    count = []

    def draw_then_signal(*a):
        count.append(1)
        if len(count) == 3:
            os.kill(os.getpid(), sig)  # a real signal, in the middle of the video
        return real_draw(*a)

    mod.draw_frame = draw_then_signal
    if sig == signal.SIGINT:
        # a shell starting a background job ignores SIGINT in it (Python then never raises
        # KeyboardInterrupt): give the test its default handler back
        saved = signal.signal(signal.SIGINT, signal.default_int_handler)
        request.addfinalizer(lambda: signal.signal(signal.SIGINT, saved))
    out, js = tmp_path / "out.mp4", tmp_path / "out.json"
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    r = _run(capsys, mod, "--video-input", video, "--output", out, "--json", js,
             "--opts", "MODEL.WEIGHTS", tiny_weights)
    assert r.returncode == rc, r.stderr[-2000:]
    assert not out.exists() and not js.exists() and not _leftovers(tmp_path)
    assert signal.getsignal(signal.SIGTERM) is sigterm_handler  # the caller's handler restored


# ---------------------------------------------------------------- evaluator CLI
def _gt_and_results(tmp_path):
    gt = {"videos": [{"id": 1, "width": 4, "height": 4, "length": 1, "file_names": ["a.jpg"]}],
          "categories": [{"id": 1, "name": "x"}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                           "segmentations": [{"size": [4, 4], "counts": [0, 16]}],
                           "areas": [16], "bboxes": [[0, 0, 4, 4]]}]}
    res = [{"video_id": 1, "category_id": 1, "score": 0.9,
            "segmentations": [{"size": [4, 4], "counts": "0`0"}]}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    return str(tmp_path / "gt.json"), str(tmp_path / "res.json")


def test_evaluator_checks_json_before_scoring(tmp_path, capsys):
    gt, res = _gt_and_results(tmp_path)
    (tmp_path / "stats.json").mkdir()
    assert eval_main([gt, res, "--json", str(tmp_path / "stats.json")]) == 1
    cap = capsys.readouterr()
    assert "stats.json" in cap.err and "AP" not in cap.out, cap
    if os.path.isdir("/proc"):
        assert eval_main([gt, res, "--json", "/proc/maskprop_stats.json"]) == 1
        cap = capsys.readouterr()
        assert "/proc/maskprop_stats.json" in cap.err and "AP" not in cap.out, cap
    assert eval_main([gt, res, "--json", str(tmp_path / "ok" / "stats.json")]) == 0
    cap = capsys.readouterr()
    assert "AP" in cap.out
    assert "AP" in json.loads((tmp_path / "ok" / "stats.json").read_text())
    assert not _leftovers(tmp_path / "ok")
