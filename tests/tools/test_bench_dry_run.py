"""tools/bench_dry_run.py at tiny sizes: the generated dataset of YouTube-VIS's shape, the
loader timing, the per-step clock on a real detectron2 SimpleTrainer, the report's numbers."""

import json
import os

import cv2
import pytest
import torch
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import EventStorage
from torch import nn

from tests.helpers import load_script

dr = load_script("bench_dry_run", "tools", "bench_dry_run.py")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dry_run")
    return root, dr.make_ytvis_shaped_dataset(str(root), videos=2, length=3, width=64, height=48)


def test_dataset_has_youtube_vis_shape(dataset):
    root, json_file = dataset
    assert json_file == os.path.join(root, "ytvis_2019", "train.json")
    assert sorted(os.listdir(root)) == ["ytvis_2019"]  # the generator's folder is gone
    with open(json_file) as f:
        data = json.load(f)
    assert [c["id"] for c in data["categories"]] == list(range(1, 41))
    assert data["categories"][0]["name"] == "person"
    assert len(data["videos"]) == 2 and data["annotations"]
    assert {a["category_id"] for a in data["annotations"]} <= set(range(1, 41))
    images = os.path.join(root, "ytvis_2019", "train", "JPEGImages")
    for v in data["videos"]:
        assert (v["width"], v["height"], v["length"]) == (64, 48, 3)
        assert len(v["file_names"]) == 3
        img = cv2.imread(os.path.join(images, v["file_names"][-1]))
        assert img is not None and img.shape == (48, 64, 3)
    with pytest.raises(FileExistsError, match="ytvis_2019"):
        dr.make_ytvis_shaped_dataset(str(root), videos=1, length=2, width=32, height=32)


def test_loader_timing_runs_the_training_mapper(dataset):
    from maskprop_d2.data.builtin import YTVIS_2019_CATEGORIES, _metadata
    from maskprop_d2.data.ytvis import register_ytvis_instances

    root, json_file = dataset
    name = "dry_run_test_train"
    register_ytvis_instances(name, _metadata(YTVIS_2019_CATEGORIES), json_file,
                             os.path.join(root, "ytvis_2019", "train", "JPEGImages"))
    cfg = dr.bc.load_cfg("r50", ["DATASETS.TRAIN", "('{}',)".format(name),
                                 "INPUT.MIN_SIZE_TRAIN", "(32,)", "INPUT.MAX_SIZE_TRAIN", 64])
    out = dr.time_loader(cfg, 3)
    assert len(out["wall_ms"]) == len(out["cpu_ms"]) == 3 and min(out["wall_ms"]) > 0
    assert out["frames"] == [3, 3, 3]  # centre + INPUT.CLIP.NUM_SAMPLED_FRAMES (2)
    assert all(hw == [32, 43] for hw in out["input_hw"])  # 48x64 resized to short side 32


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, batch):
        return {"loss": (self.w * len(batch)).sum()}


def test_step_clock_on_a_simple_trainer():
    batch = [{"image": [torch.zeros(3, 4, 5)] * 2}]
    model = _Model()
    trainer = SimpleTrainer(model, iter(lambda: batch, None), torch.optim.SGD(model.parameters(),
                                                                              lr=0.1))
    clock = dr.StepClock()
    dr.instrument(trainer, clock)
    with EventStorage(0):
        trainer.run_step()
        trainer.run_step()
    assert len(clock.steps) == 2
    s = clock.steps[1]
    assert s["input_hw"] == [[4, 5]] and s["frames"] == [2] and s["rss_mib"] > 0
    parts = ("data", "forward", "backward", "optimizer")
    assert all(s[p + "_ms"] >= 0 and s[p + "_cpu_ms"] >= 0 for p in parts)
    assert sum(s[p + "_ms"] for p in parts) <= s["step_ms"] + 1e-6
    assert float(model.w.detach()[0]) == pytest.approx(1 - 2 * 0.1)  # two real SGD steps


def test_workers_needed():
    assert dr.workers_needed(150, 2, 100) == 3  # 300 ms of loading per 100 ms GPU step
    assert dr.workers_needed(150, 2, 300) == 1
    assert dr.workers_needed(10, 2, 1000) == 1  # at least one
    assert dr.workers_needed(250, 2, 100) == 5
    with pytest.raises(ValueError):
        dr.workers_needed(100, 2, 0)


def _rank(r, step_ms):
    step = {"data_ms": 10, "forward_ms": 100, "backward_ms": 200, "optimizer_ms": 20,
            "step_ms": step_ms, "input_hw": [[640, 1138]], "frames": [3], "rss_mib": 2000}
    step.update({k.replace("_ms", "_cpu_ms"): v / 2 for k, v in step.items() if k.endswith("ms")})
    first = dict(step, step_ms=99999, step_cpu_ms=99999)  # iteration 0: left out of the means
    return {"rank": r, "steps": [first, step, step],
            "maxrss_mib": {"start": 300, "built": 1000, "end": 2500}}


def test_report_lines():
    loader = {"wall_ms": [100, 200, 300], "cpu_ms": [90, 180, 270],
              "input_hw": [[640, 1138], [320, 569], [640, 1138]], "frames": [3, 3, 3]}
    text = "\n".join(dr.report_lines(loader, [_rank(0, 400), _rank(1, 500)],
                                     clips_per_gpu_step=2, gpu_step_ms=(100, 1000)))
    assert "| wall | 200 | 200 | 100 | 300 |" in text
    assert "| CPU | 180 | 180 | 90 | 270 |" in text
    assert "320x569, 640x1138" in text
    assert "| rank 0 | 2 | 10 / 5 | 100 / 50 | 200 / 100 | 20 / 10 | 400 / 200 |" in text
    assert "| rank 1 | 2 | 10 / 5 | 100 / 50 | 200 / 100 | 20 / 10 | 500 / 250 |" in text
    assert "| rank 1 | 1000 | 2500 | 1500 |" in text
    assert "| 100 | 2 | 400 | 4 |" in text and "| 1000 | 2 | 400 | 1 |" in text
    assert "| 0 | 0 | 640x1138 | 3 | 5 | 50 | 100 | 99999 | 99999 | 2000 |" in text  # listed
    assert "| 1 | 2 | 640x1138 | 3 | 5 | 50 | 100 | 250 | 500 | 2000 |" in text
