"""demo/demo.py on generated video files: output readable with same frame count/size/fps."""

import json
import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from tests.helpers import REPO_ROOT, TINY_CONFIG, load_script, repo_path, save_random_checkpoint
from tests.video_helpers import write_video


def run_demo_inprocess(capsys, *args):
    """Run demo.main in this process (fast: no re-import of torch/detectron2)."""
    mod = load_script("maskprop_demo", "demo", "demo.py")
    rc = mod.main(["--config-file", TINY_CONFIG] + [str(a) for a in args])
    return subprocess.CompletedProcess(args, rc, "", capsys.readouterr().err)


def with_box_masks(weights, path):
    """A copy of checkpoint ``weights`` at ``path`` whose mask head fills every detection's box
    (predictor bias +4). A random model's masks are nearly empty (about 1e-6 of the frame's
    pixels pass 0.5 at the tiny config's input), so whether an instance has any pixel depends
    on the input size: tests that need instances in the output take these weights. Returns
    ``path`` as str."""
    import torch

    ckpt = torch.load(str(weights), map_location="cpu", weights_only=True)
    ckpt["model"]["roi_heads.mask_head.predictor.bias"].fill_(4.0)
    torch.save(ckpt, str(path))
    return str(path)


def run_demo(*args):
    demo = os.path.join(REPO_ROOT, "demo", "demo.py")
    cmd = [sys.executable, demo, "--config-file", TINY_CONFIG] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def test_demo_video_roundtrip(tmp_path, tiny_weights, capsys):
    src = tmp_path / "in.mp4"
    write_video(src)
    out = tmp_path / "out.mp4"
    tracks = tmp_path / "tracks.json"
    r = run_demo(
        "--video-input",
        src,
        "--output",
        out,
        "--json",
        tracks,
        "--confidence-threshold",
        "0.0",
        "--opts",
        "MODEL.WEIGHTS",
        tiny_weights,
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        "0.0",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    with av.open(str(out)) as container:  # H.264, which browsers play; every frame decodes
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 7
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(frames) == 14 and all(f.shape == (80, 120, 3) for f in frames)
    umask = os.umask(0)
    os.umask(umask)
    for p in (out, tracks):  # published with normal permissions, not mkstemp's 0600
        assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask
    entries = json.load(open(tracks))
    assert isinstance(entries, list)
    for e in entries:
        assert len(e["segmentations"]) == 14
        assert {"video_id", "category_id", "score"} <= set(e)
    # never overwrites without --overwrite
    r = run_demo_inprocess(
        capsys, "--video-input", src, "--output", out, "--opts", "MODEL.WEIGHTS", tiny_weights
    )
    assert r.returncode == 2 and "--overwrite" in r.stderr


def test_demo_frame_folder(tmp_path, tiny_weights, capsys):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(5):
        cv2.imwrite(str(d / "{:05d}.jpg".format(i)), np.full((48, 64, 3), 40 * i, np.uint8))
    out = tmp_path / "out.avi"
    r = run_demo_inprocess(
        capsys, "--input", d, "--output", out, "--fps", "5", "--output-scale", "2.5",
        "--opts", "MODEL.WEIGHTS", tiny_weights,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter_fourcc(*"MJPG")
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 120)
    for bad in (["--output-scale", "0"], ["--output-scale", "nan"]):
        r = run_demo_inprocess(capsys, "--input", d, "--output", tmp_path / "o.avi", *bad,
                               "--opts", "MODEL.WEIGHTS", tiny_weights)  # fmt: skip
        assert r.returncode == 2 and "--output-scale" in r.stderr
        assert not (tmp_path / "o.avi").exists()
    r = run_demo_inprocess(capsys, "--input", d, "--output", tmp_path / "o.gif",
                           "--opts", "MODEL.WEIGHTS", tiny_weights)  # fmt: skip
    assert r.returncode == 2 and ".mp4" in r.stderr and not (tmp_path / "o.gif").exists()


def test_demo_clear_errors(tmp_path, tiny_weights, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(5000))
    out = tmp_path / "o.mp4"
    r = run_demo_inprocess(
        capsys, "--video-input", corrupt, "--output", out, "--opts", "MODEL.WEIGHTS", tiny_weights
    )
    assert r.returncode == 2 and "corrupt.mp4" in r.stderr
    assert not out.exists()

    r = run_demo_inprocess(
        capsys,
        "--video-input",
        tmp_path / "missing.mp4",
        "--output",
        out,
        "--opts",
        "MODEL.WEIGHTS",
        tiny_weights,
    )
    assert r.returncode == 2 and "not found" in r.stderr

    src = tmp_path / "in.avi"
    write_video(src, n=30, fourcc="MJPG")
    data = src.read_bytes()
    trunc = tmp_path / "trunc.avi"
    trunc.write_bytes(data[: len(data) // 2])
    r = run_demo_inprocess(
        capsys, "--video-input", trunc, "--output", out, "--opts", "MODEL.WEIGHTS", tiny_weights
    )
    assert r.returncode == 2 and "trunc.avi" in r.stderr, r.stderr[-2000:]
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".o.")], "temp output left behind"

    r = run_demo_inprocess(
        capsys,
        "--video-input",
        src,
        "--output",
        tmp_path / "nodir" / "o.mp4",
        "--opts",
        "MODEL.WEIGHTS",
        tiny_weights,
    )
    assert r.returncode == 2 and "does not exist" in r.stderr

    r = run_demo_inprocess(
        capsys,
        "--video-input",
        src,
        "--output",
        out,
        "--opts",
        "MODEL.WEIGHTS",
        tmp_path / "nope.pth",
    )
    assert r.returncode == 2 and "nope.pth" in r.stderr


def test_demo_unknown_tracker_is_a_clear_error(tmp_path, tiny_weights, capsys):
    src = tmp_path / "in.mp4"
    write_video(src, n=3)
    out = tmp_path / "o.mp4"
    r = run_demo_inprocess(
        capsys, "--video-input", src, "--output", out,
        "--opts", "MODEL.WEIGHTS", tiny_weights, "MODEL.MASKPROP.INFERENCE.TRACKER", "nope",
    )  # fmt: skip
    assert r.returncode == 2
    assert "unknown tracker 'nope'" in r.stderr and "frame_linking, maskprop" in r.stderr
    assert not out.exists()


def test_demo_runs_the_configured_tracker(tmp_path, tiny_weights, capsys):
    """MODEL.MASKPROP.INFERENCE.TRACKER picks the demo's tracker: frame linking's output is
    final at once and its JSON is what the library's results assembly gives."""
    src = tmp_path / "in.mp4"
    write_video(src, n=5)
    out, js = tmp_path / "fl.mp4", tmp_path / "fl.json"
    weights = with_box_masks(tiny_weights, tmp_path / "box_masks.pth")
    r = run_demo_inprocess(
        capsys, "--video-input", src, "--output", out, "--json", js,
        "--opts", "MODEL.WEIGHTS", weights,
        "MODEL.MASKPROP.INFERENCE.TRACKER", "frame_linking",
        "MODEL.MASKPROP.INFERENCE.SCORE_THRESH", "0.0", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    entries = json.loads(js.read_text())
    assert entries and all(len(e["segmentations"]) == 5 for e in entries)
    assert all(e["video_id"] == 1 for e in entries)


@pytest.mark.parametrize(
    "config, tracker",
    [
        (TINY_CONFIG, "flow_propagation"),  # any MaskProp checkpoint
        (repo_path("configs", "synthetic", "masktrack_tiny.yaml"), "tracking_head"),
    ],
)
def test_demo_runs_the_baseline_trackers(tmp_path, tiny_weights, capsys, config, tracker):
    """The paper's baselines run in the demo by config: the flow tracker with the MaskProp
    config, the tracking head with the MaskTrack config and a MaskTrack checkpoint (a MaskProp
    checkpoint leaves its tracking head uninitialised: refused, tests/abuse)."""
    if tracker == "tracking_head":
        tiny_weights = str(tmp_path / "masktrack.pth")
        save_random_checkpoint(config, tiny_weights)
    tiny_weights = with_box_masks(tiny_weights, tmp_path / "box_masks.pth")
    src = tmp_path / "in.mp4"
    write_video(src, n=5)
    out, js = tmp_path / "o.mp4", tmp_path / "o.json"
    mod = load_script("maskprop_demo", "demo", "demo.py")
    rc = mod.main([str(a) for a in (
        "--config-file", config, "--video-input", src, "--output", out, "--json", js,
        "--opts", "MODEL.WEIGHTS", tiny_weights, "MODEL.MASKPROP.INFERENCE.TRACKER", tracker,
        "MODEL.MASKPROP.INFERENCE.SCORE_THRESH", "0.0", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    )])  # fmt: skip
    assert rc == 0, capsys.readouterr().err[-3000:]
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()
    entries = json.loads(js.read_text())
    assert entries and all(len(e["segmentations"]) == 5 for e in entries)
