"""Failures that used to come late in training come before iteration 0 or not at all: frame
paths outside the image root, unreadable or wrongly sized frames (skipped with a warning, counted,
stop past a fraction; ``DATASETS.VERIFY_FRAMES: "decode"`` finds them up front), config values
that inference needs, and ``--resume`` picking checkpoints by iteration."""
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.events import EventStorage
from torch import nn

from maskprop_d2.checkpoint import AtomicCheckpointer
from maskprop_d2.config import ConfigValueError, get_maskprop_cfg
from maskprop_d2.data import build_clip_train_loader
from maskprop_d2.data.build import SkippedClipsError
from maskprop_d2.data.validation import DatasetValidationError
from maskprop_d2.data.ytvis import load_ytvis_json, register_ytvis_instances
from maskprop_d2.inference import check_inference_config
from tests.helpers import REPO_ROOT, TINY_CONFIG


@pytest.fixture
def train_copy(synthetic_dataset, tmp_path):
    """(json path, image root) of a private copy of the shared synthetic train split."""
    root = tmp_path / "ds"
    shutil.copytree(synthetic_dataset / "train", root / "train")
    shutil.copy(synthetic_dataset / "train.json", root / "train.json")
    return root / "train.json", root / "train" / "JPEGImages"


@pytest.fixture
def register():
    names = []

    def reg(json_file, image_root):
        name = f"test_late_{uuid.uuid4().hex[:8]}"
        names.append(name)
        register_ytvis_instances(name, {}, str(json_file), str(image_root))
        return name

    yield reg
    for n in names:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


@pytest.mark.parametrize("bad", ["../train/x.jpg", "/etc/hostname", "a/../../b.jpg", "",
                                 "a\\..\\..\\b.jpg"])
def test_frame_paths_must_stay_under_the_image_root(train_copy, bad):
    json_file, image_root = train_copy
    data = json.loads(json_file.read_text())
    data["videos"][1]["file_names"][2] = bad
    json_file.write_text(json.dumps(data))
    with pytest.raises(ValueError) as e:
        load_ytvis_json(str(json_file), str(image_root))
    msg = str(e.value)
    assert str(json_file) in msg and "frame 2" in msg and "'file_names'" in msg, msg
    assert repr(bad) in msg, msg


def _spoil(image_root, data):
    """Garbage bytes in every frame of the first video, a truncated JPEG and wrong-size frames
    in the second; returns the spoilt files."""
    v0, v1 = data["videos"][0]["file_names"], data["videos"][1]["file_names"]
    spoilt = []
    for fn in v0:
        (image_root / fn).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        spoilt.append(str(image_root / fn))
    for i, fn in enumerate(v1):
        p = image_root / fn
        if i == 0:
            p.write_bytes(p.read_bytes()[:200])  # truncated
        else:
            cv2.imwrite(str(p), np.zeros((10, 12, 3), np.uint8))  # wrong size
        spoilt.append(str(p))
    return spoilt


def _cfg(name, **kv):
    opts = ["DATASETS.TRAIN", (name,), "DATALOADER.NUM_WORKERS", 0, "SOLVER.IMS_PER_BATCH", 1,
            "MODEL.DEVICE", "cpu"]
    for k, v in kv.items():
        opts += [k, v]
    return get_maskprop_cfg(TINY_CONFIG, opts)


def test_unreadable_frames_skip_their_clip_and_are_counted(train_copy, register, caplog):
    json_file, image_root = train_copy
    data = json.loads(json_file.read_text())
    spoilt = _spoil(image_root, data)
    name = register(json_file, image_root)
    loader = build_clip_train_loader(_cfg(name, **{"DATASETS.MAX_SKIPPED_CLIP_FRACTION": 1.0}))
    good = {os.path.join(str(image_root), fn) for fn in data["videos"][2]["file_names"]}
    with caplog.at_level(logging.WARNING), EventStorage(0) as storage:
        it = iter(loader)
        for _ in range(12):  # 2 of 3 videos are spoilt: no skip in 12 draws has odds 3^-12
            batch = next(it)
            assert set(batch[0]["file_names"]) <= good  # only the intact video is trained on
            assert "skipped_frames" not in batch[0]
            storage.step()
    warned = [r.getMessage() for r in caplog.records if "skipped a training clip" in
              r.getMessage()]
    assert warned and all(any(f in w for f in spoilt) for w in warned), warned[:3]
    assert any("cannot be decoded" in w for w in warned)
    count = storage.history("data/skipped_clips").latest()
    assert count == loader.skipped == len(warned) > 0


def test_too_many_skipped_clips_stop_the_run(train_copy, register):
    json_file, image_root = train_copy
    _spoil(image_root, json.loads(json_file.read_text()))
    name = register(json_file, image_root)
    loader = build_clip_train_loader(_cfg(name, **{"DATASETS.MAX_SKIPPED_CLIP_FRACTION": 0.02}))
    it = iter(loader)
    with pytest.raises(SkippedClipsError) as e:
        for _ in range(100):
            next(it)
    msg = str(e.value)
    assert "MAX_SKIPPED_CLIP_FRACTION = 0.02" in msg and str(image_root) in msg, msg
    assert 2 < loader.skipped <= 3 + 1  # stops at the first skip past 2 (0.02 x 100 draws)


def test_verify_frames_decode_finds_them_before_iteration_0(train_copy, register):
    json_file, image_root = train_copy
    spoilt = _spoil(image_root, json.loads(json_file.read_text()))
    name = register(json_file, image_root)
    with pytest.raises(DatasetValidationError) as e:
        build_clip_train_loader(_cfg(name, **{"DATASETS.VERIFY_FRAMES": "decode"}))
    msg = str(e.value)
    assert "12 problem(s)" in msg and spoilt[0] in msg and "size 12x10" in msg, msg
    with pytest.raises(ConfigValueError, match="DATASETS.VERIFY_FRAMES"):
        _cfg(name, **{"DATASETS.VERIFY_FRAMES": "everything"})


@pytest.mark.parametrize("key, value", [
    ("MODEL.MASKPROP.INFERENCE.TRACKER", "nope"),
    ("MODEL.MASKPROP.INFERENCE.TRACKER", "tracking_head"),  # MaskProp config: no tracking head
    ("MODEL.MASKPROP.INFERENCE.SCORE_THRESH", 1.5),
    ("MODEL.MASKPROP.INFERENCE.MATCH_THRESH", -0.1),
    ("MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME", 0),
    ("MODEL.MASKPROP.INFERENCE.FLOW_METHOD", "lucas"),
    ("MODEL.MASKPROP.INFERENCE.CENTER_MASK", "both"),
    ("TEST.DETECTIONS_PER_VIDEO", 0),
])
def test_inference_values_are_checked_when_the_config_is_built(key, value):
    cfg = get_maskprop_cfg(TINY_CONFIG, [key, value])
    with pytest.raises(ConfigValueError) as e:
        check_inference_config(cfg, TINY_CONFIG)
    assert key in str(e.value) and TINY_CONFIG in str(e.value)


def test_nan_threshold_in_a_config_file(tmp_path):
    cfg_file = tmp_path / "nan.yaml"
    cfg_file.write_text(f'_BASE_: "{TINY_CONFIG}"\nMODEL:\n  MASKPROP:\n    INFERENCE:\n'
                        "      MASK_THRESH: .nan\n")
    with pytest.raises(ConfigValueError, match="MASK_THRESH must be a finite number"):
        check_inference_config(get_maskprop_cfg(str(cfg_file)), str(cfg_file))


def test_train_net_stops_on_a_bad_tracker_before_building_anything(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train_net.py"), "--config-file", TINY_CONFIG,
         "OUTPUT_DIR", str(out), "MODEL.MASKPROP.INFERENCE.TRACKER", "nope"],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode != 0
    assert "unknown tracker 'nope'" in proc.stderr, proc.stderr[-2000:]
    assert "Model:" not in proc.stdout + proc.stderr
    assert not out.exists()


def test_resume_orders_checkpoints_by_iteration_not_file_time(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    ck = AtomicCheckpointer(model, str(tmp_path))
    for it in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(float(it))
        ck.save(f"model_{it:07d}")
    ck.save("model_best")  # another name: ranks after the numbered ones
    # a copy that reversed the file times, and a tag that still names an older file
    now = time.time()
    for it in (1, 2, 3):
        os.utime(tmp_path / f"model_{it:07d}.pth", (now - 100 * it, now - 100 * it))
    (tmp_path / "last_checkpoint").write_text("model_0000001.pth")
    assert [os.path.basename(f) for f in ck.resume_candidates()] == [
        "model_0000003.pth", "model_0000002.pth", "model_0000001.pth", "model_best.pth"]
    with torch.no_grad():
        model.weight.zero_()
    ck.resume_or_load("", resume=True)
    assert model.weight.detach()[0, 0].item() == 3.0
    # model_final outranks every numbered checkpoint
    ck.save("model_final")
    os.utime(tmp_path / "model_final.pth", (now - 1000, now - 1000))
    assert os.path.basename(ck.resume_candidates()[0]) == "model_final.pth"


def _train_net(args, cwd, root):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MASKPROP_SYNTHETIC_ROOT=str(root))
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train_net.py"), "--config-file", TINY_CONFIG]
        + [str(a) for a in args],
        capture_output=True, text=True, cwd=str(cwd), env=env, timeout=600)


def test_eval_only_refuses_foreign_weights_in_one_line(synthetic_dataset, tmp_path):
    tv = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(tv))
    out = tmp_path / "out"
    proc = _train_net(["--eval-only", "MODEL.WEIGHTS", tv, "OUTPUT_DIR", out], tmp_path,
                      synthetic_dataset)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tv} leaves") and "shares no parameter name" in last, last
    assert "Traceback" not in proc.stderr
    assert not (out / "inference").exists()


@pytest.mark.slow
def test_training_skips_a_clip_with_an_unreadable_frame(synthetic_dataset, tmp_path):
    """Two iterations on a copy of the shared data whose first two videos' frames are garbage:
    the run finishes, names the files in warnings and records data/skipped_clips (a clip of
    the intact video is drawn 8 times: the chance that no bad one is drawn is (1/3)^8)."""
    root = tmp_path / "ds"
    shutil.copytree(synthetic_dataset, root)
    data = json.loads((root / "train.json").read_text())
    for fn in data["videos"][0]["file_names"] + data["videos"][1]["file_names"]:
        (root / "train" / "JPEGImages" / fn).write_bytes(b"\xff\xd8 garbage")
    out = tmp_path / "out"
    proc = _train_net(["SOLVER.STEPS", "()", "SOLVER.IMS_PER_BATCH", 4, "SOLVER.MAX_ITER", 2,
                       "DATALOADER.NUM_WORKERS", 0, "DATASETS.TEST", "()",
                       "DATASETS.MAX_SKIPPED_CLIP_FRACTION", 1.0, "OUTPUT_DIR", out],
                      tmp_path, root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "skipped a training clip: frame " + str(root / "train" / "JPEGImages") in log, \
        log[-3000:]
    metrics = [json.loads(ln) for ln in (out / "metrics.json").read_text().splitlines()]
    assert any(m.get("data/skipped_clips", 0) > 0 for m in metrics), metrics
    assert (out / "model_final.pth").exists()
