"""tools/bench_trackers.py: every tracker on one shared detector, real and oracle rows."""

import json

import torch

from tests.helpers import load_script, repo_path, save_random_checkpoint

bench = load_script("bench_trackers", "tools", "bench_trackers.py")


def test_one_report_with_every_tracker_on_shared_detections(synthetic_dataset, tmp_path):
    # a MaskTrack checkpoint (complete for its config: MaskProp weights lack the tracking head)
    weights = save_random_checkpoint(repo_path("configs/synthetic/masktrack_tiny.yaml"),
                                     tmp_path / "masktrack.pth")
    out = tmp_path / "trackers.md"
    calls = {"n": 0}
    # count the real detector calls through the model class: one per frame, whatever the rows
    from maskprop_d2.modeling import MaskProp

    real_detect = MaskProp.detect_frame

    def counting(self, *a, **k):
        calls["n"] += 1
        return real_detect(self, *a, **k)

    MaskProp.detect_frame = counting
    try:
        bench.main([
            "--weights", weights,
            "--config", repo_path("configs/synthetic/masktrack_tiny.yaml"),
            "--standard-root", str(synthetic_dataset), "--splits", "standard",
            "--half-lengths", "1", "--out", str(out), "--work-dir", str(tmp_path / "work"),
            "--bootstrap", "4", "--bootstrap-hota", "2",
            "--opts", "MODEL.MASKPROP.INFERENCE.SCORE_THRESH", "0.0",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        ])  # fmt: skip
    finally:
        MaskProp.detect_frame = real_detect
    with open(synthetic_dataset / "valid.json") as f:
        gt = json.load(f)
    n_frames = sum(v["length"] for v in gt["videos"])
    assert calls["n"] == n_frames  # the detector ran once per frame for all 8 rows

    text = out.read_text()
    summary = json.loads(out.with_suffix(".json").read_text())["standard"]
    labels = [r["label"] for r in summary["real"]]
    assert labels == [
        "MaskProp (paper's matching), T = 1",
        "MaskProp default, T = 3",
        "MaskProp default, tracking-head embedding, T = 3",
        "flow propagation (OpenCV dis), T = 3",
        "tracking head (MaskTrack R-CNN)",
        "frame linking",
    ]
    assert [r["label"] for r in summary["oracle"]] == [
        "MaskProp (paper's matching), T = 3", "MaskProp default, T = 3",
        "MaskProp default, tracking-head embedding, T = 3",
        "flow propagation (OpenCV dis), T = 3",
        "tracking head (MaskTrack R-CNN)", "frame linking",
    ]  # fmt: skip
    for label in labels:
        assert "| " + label + " |" in text
    assert out.with_suffix(".png").stat().st_size > 0
    for row in summary["real"] + summary["oracle"]:
        assert len(row["values"]) == len(bench.SEGM) + len(bench.IDENT)
        assert row["ms_per_frame"] >= 0
    # ground-truth detections linked frame to frame: every object found in every frame (AP50
    # and DetA high: GT masks, only resampled through the 28x28 mask grid) and AP far above the
    # random-weight detector's
    # the spread of the default MaskProp row against the best baselines by AP and by HOTA
    assert summary["spread"].startswith("MaskProp default, T = 3 minus the best baseline, ")
    assert "against the best by AP, " in summary["spread"]
    assert "against the best by HOTA, " in summary["spread"]
    assert "AP " in summary["spread"] and "HOTA " in summary["spread"]
    assert summary["spread"] in text
    fl_real, fl_oracle = summary["real"][5]["values"], summary["oracle"][5]["values"]
    deta = len(bench.SEGM) + bench.IDENT.index("DetA")
    assert fl_oracle[1] > 90 and fl_oracle[deta] > 70, fl_oracle
    assert fl_oracle[0] > fl_real[0] + 20, (fl_oracle, fl_real)
    torch.set_num_threads(1)  # main() set the benchmark's thread count
