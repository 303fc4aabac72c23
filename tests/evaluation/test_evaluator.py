"""YTVISEvaluator (detectron2 DatasetEvaluator protocol), its files, the distributed gather and
``train_net.py --eval-only`` end to end, on a tiny generated synthetic dataset."""

import copy
import json
import logging
import math
import os
import socket
import time
import uuid
import zipfile

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from maskprop_d2.data.synthetic import SYNTHETIC_CATEGORIES
from maskprop_d2.data.ytvis import register_ytvis_instances
from maskprop_d2.evaluation import YTVISEvaluator
from maskprop_d2.evaluation.__main__ import main as cli_main
from maskprop_d2.evaluation.results_io import check_results, load_results
from tests.helpers import TINY_CONFIG, load_script
from tests.video_helpers import tiny_video_model

SUMMARY_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"]


def _metadata():
    cats = sorted(SYNTHETIC_CATEGORIES, key=lambda c: c["id"])
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def _register(name, json_file, image_root, metadata=None):
    """Register ``name`` once per process (spawned workers call this too)."""
    if name not in DatasetCatalog.list():
        register_ytvis_instances(
            name, _metadata() if metadata is None else metadata, json_file, image_root
        )


def _unregister(name):
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _videos(gt):
    """The video dicts ``process`` takes (what the test loader yields, minus the frames)."""
    return [{"video_id": v["id"], "length": v["length"]} for v in gt["videos"]]


def _oracle(gt, id_map, video_ids=None):
    """GT tracks as result entries, per video: contiguous category ids, score 1.0."""
    out = {v["id"]: [] for v in gt["videos"]}
    for a in gt["annotations"]:
        out[a["video_id"]].append(
            {
                "category_id": id_map[a["category_id"]],
                "score": 1.0,
                "segmentations": copy.deepcopy(a["segmentations"]),
            }
        )
    if video_ids is not None:
        out = {k: v for k, v in out.items() if k in video_ids}
    return out


def _feed(evaluator, gt, entries_by_video, per_call=1):
    videos = [v for v in _videos(gt) if v["video_id"] in entries_by_video]
    for i in range(0, len(videos), per_call):
        batch = videos[i : i + per_call]
        evaluator.process(batch, [entries_by_video[v["video_id"]] for v in batch])


def _read_zip(path):
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["results.json"]  # at the zip's root, nothing else
        return json.loads(z.read("results.json"))


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def dataset(synthetic_dataset):
    """The val split of the shared synthetic dataset (3 videos), registered under a unique name."""
    root = str(synthetic_dataset)
    json_file = os.path.join(root, "valid.json")
    image_root = os.path.join(root, "valid", "JPEGImages")
    with open(json_file) as f:
        gt = json.load(f)
    assert gt["annotations"], "the generator should put objects in the val videos"
    assert len({a["video_id"] for a in gt["annotations"]}) >= 2
    name = "test_evaluator_val_" + uuid.uuid4().hex[:8]
    _register(name, json_file, image_root)
    yield {
        "name": name,
        "root": root,
        "json": json_file,
        "image_root": image_root,
        "gt": gt,
        "id_map": _metadata()["thing_dataset_id_to_contiguous_id"],
    }
    _unregister(name)


@pytest.fixture
def unique_name():
    names = []

    def make():
        names.append("test_evaluator_" + uuid.uuid4().hex[:8])
        return names[-1]

    yield make
    for n in names:
        _unregister(n)


# ------------------------------------------------------------------------------------ oracle
def test_oracle_scores_100_and_writes_codalab_files(dataset, tmp_path):
    gt = dataset["gt"]
    out = tmp_path / "inference"
    ev = YTVISEvaluator(dataset["name"], output_dir=str(out), distributed=False)
    ev.reset()
    _feed(ev, gt, _oracle(gt, dataset["id_map"]))
    res = ev.evaluate()

    segm = res["segm"]
    assert list(segm)[:8] == SUMMARY_KEYS
    for k in ("AP", "AP50", "AP75", "AR1", "AR10"):
        assert segm[k] == pytest.approx(100.0), k
    assert segm["APs"] == pytest.approx(100.0)  # 96x64: every object is small
    assert math.isnan(segm["APm"]) and math.isnan(segm["APl"])  # -1 (undefined) -> nan
    present = {a["category_id"] for a in gt["annotations"]}
    for c in SYNTHETIC_CATEGORIES:
        key = "AP-" + c["name"]
        assert key in segm
        if c["id"] in present:
            assert segm[key] == pytest.approx(100.0), key
        else:
            assert math.isnan(segm[key]), key

    # the files: results.json and results.zip (results.json at the root), dataset category ids
    assert (out / "results.json").is_file() and (out / "results.zip").is_file()
    written = _read_zip(out / "results.zip")
    assert written == json.loads((out / "results.json").read_text())
    assert len(written) == len(gt["annotations"])
    expected = sorted(
        (a["video_id"], a["category_id"], json.dumps(a["segmentations"])) for a in gt["annotations"]
    )
    got = sorted((r["video_id"], r["category_id"], json.dumps(r["segmentations"])) for r in written)
    assert got == expected  # dataset ids (1-based), not the contiguous ones fed in
    assert all(r["score"] == 1.0 for r in written)
    assert check_results(gt, written) == []

    # the CLI agrees: --check passes, scoring gives the same AP (fractions)
    assert cli_main(["--check", dataset["json"], str(out / "results.zip")]) == 0
    stats = tmp_path / "stats.json"
    assert cli_main([dataset["json"], str(out / "results.json"), "--json", str(stats)]) == 0
    assert json.loads(stats.read_text())["AP"] == pytest.approx(segm["AP"] / 100.0)

    # reset() forgets everything; a second round with one video's predictions dropped scores less
    ev.reset()
    dropped = gt["annotations"][0]["video_id"]
    oracle = _oracle(gt, dataset["id_map"])
    oracle[dropped] = []
    _feed(ev, gt, oracle, per_call=3)  # several videos in one process() call
    res2 = ev.evaluate()["segm"]
    assert res2["AP"] < 100.0 - 1e-6
    assert res2["AR10"] < 100.0 - 1e-6
    rewritten = load_results(str(out / "results.zip"))
    assert len(rewritten) == sum(a["video_id"] != dropped for a in gt["annotations"])
    assert dropped not in {r["video_id"] for r in rewritten}


def test_identity_metrics_under_a_config_key(dataset):
    """cfg.TEST.IDENTITY_METRICS: the oracle's identity metrics by TrackEval (percent, IDSW 0)."""
    from maskprop_d2 import get_maskprop_cfg

    cfg = get_maskprop_cfg()
    assert cfg.TEST.IDENTITY_METRICS is False
    plain = YTVISEvaluator.from_config(cfg, dataset["name"], distributed=False)
    assert "identity" not in _evaluate_oracle(dataset, plain)
    cfg.TEST.IDENTITY_METRICS = True
    ev = YTVISEvaluator.from_config(cfg, dataset["name"], distributed=False)
    res = _evaluate_oracle(dataset, ev)
    assert res["segm"]["AP"] == pytest.approx(100.0)
    ident = res["identity"]
    assert list(ident) == ["HOTA", "DetA", "AssA", "IDF1", "IDSW"]
    present = {a["category_id"] for a in dataset["gt"]["annotations"]}
    # class-averaged over all categories, those without GT count 0 (TrackEval)
    frac = len(present) / len(dataset["gt"]["categories"])
    for k in ("HOTA", "DetA", "AssA", "IDF1"):
        assert ident[k] == pytest.approx(100.0 * frac), k
    assert ident["IDSW"] == 0


def _evaluate_oracle(dataset, ev):
    ev.reset()
    _feed(ev, dataset["gt"], _oracle(dataset["gt"], dataset["id_map"]))
    return ev.evaluate()


def test_scores_sorted_and_no_output_dir(dataset):
    """Without output_dir nothing is written, metrics still come back; lower scores still count."""
    gt = dataset["gt"]
    oracle = _oracle(gt, dataset["id_map"])
    for entries in oracle.values():
        for i, e in enumerate(entries):
            e["score"] = 0.9 - 0.1 * i
    ev = YTVISEvaluator(dataset["name"], output_dir=None, distributed=False)
    _feed(ev, gt, oracle)
    assert ev.evaluate()["segm"]["AP"] == pytest.approx(100.0)


def test_no_predictions_scores_zero(dataset, tmp_path):
    ev = YTVISEvaluator(dataset["name"], output_dir=str(tmp_path), distributed=False)
    ev.process(_videos(dataset["gt"]), [[] for _ in dataset["gt"]["videos"]])
    segm = ev.evaluate()["segm"]
    assert segm["AP"] == 0.0 and segm["AR10"] == 0.0
    assert load_results(str(tmp_path / "results.zip")) == []


def test_mapping_read_from_json_when_metadata_has_none(dataset, unique_name, tmp_path):
    """Registered without an id map (and never loaded): contiguous ids still become dataset ids."""
    name = unique_name()
    _register(name, dataset["json"], dataset["image_root"], metadata={})
    ev = YTVISEvaluator(name, output_dir=str(tmp_path), distributed=False)
    _feed(ev, dataset["gt"], _oracle(dataset["gt"], dataset["id_map"]))
    assert ev.evaluate()["segm"]["AP"] == pytest.approx(100.0)
    written = load_results(str(tmp_path / "results.zip"))
    assert sorted(r["category_id"] for r in written) == sorted(
        a["category_id"] for a in dataset["gt"]["annotations"]
    )


# ------------------------------------------------------------------------------------ no GT
def test_split_without_annotations_writes_zip_only(dataset, unique_name, tmp_path, caplog):
    gt = dataset["gt"]
    test_json = tmp_path / "test.json"
    test_json.write_text(json.dumps({k: v for k, v in gt.items() if k != "annotations"}))
    name = unique_name()
    _register(name, str(test_json), dataset["image_root"])
    out = tmp_path / "inference"
    ev = YTVISEvaluator(name, output_dir=str(out), distributed=False)
    _feed(ev, gt, _oracle(gt, dataset["id_map"]))
    with caplog.at_level(logging.INFO, logger="maskprop_d2.evaluation.evaluator"):
        assert ev.evaluate() == {}
    assert (out / "results.zip").is_file()
    written = _read_zip(out / "results.zip")
    assert len(written) == len(gt["annotations"])
    assert check_results(gt, written) == []
    assert str(out / "results.zip") in caplog.text  # says where the submission is


# ------------------------------------------------------------------------------------ errors
def test_wrong_number_of_segmentations_names_the_video(dataset):
    gt = dataset["gt"]
    ev = YTVISEvaluator(dataset["name"], output_dir=None, distributed=False)
    video = _videos(gt)[1]
    entry = {"category_id": 0, "score": 0.5, "segmentations": [None] * (video["length"] - 1)}
    with pytest.raises(
        ValueError, match=r"video {}\b.*5 segmentations for 6 frames".format(video["video_id"])
    ):
        ev.process([video], [[entry]])
    entry["segmentations"] = [None] * (video["length"] + 2)
    with pytest.raises(ValueError, match=r"video {}\b".format(video["video_id"])):
        ev.process([video], [[entry]])
    # a contiguous category id the dataset does not have: a clear error, not a KeyError
    bad = {"category_id": 99, "score": 0.5, "segmentations": [None] * video["length"]}
    with pytest.raises(ValueError, match=r"category id 99 out of range \(0\.\.4\)"):
        ev.process([video], [[bad]])


def test_unregistered_json_is_a_clear_error():
    name = "test_evaluator_nojson_" + uuid.uuid4().hex[:8]
    MetadataCatalog.get(name).set(thing_classes=["a"])
    try:
        with pytest.raises(ValueError, match="json_file"):
            YTVISEvaluator(name)
    finally:
        MetadataCatalog.remove(name)


# ------------------------------------------------------------------------------------ distributed
def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank, world_size, port, ds, out_dirs, report_dir):
    """One gloo rank: evaluates its half of the videos (module level: spawn pickles it)."""
    import datetime

    import detectron2.utils.comm as comm
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method="tcp://127.0.0.1:{}".format(port),
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        report = {
            "world_size": comm.get_world_size(),
            "rank": comm.get_rank(),
            "is_main": comm.is_main_process(),
        }
        _register(ds["name"], ds["json"], ds["image_root"])
        gt = ds["gt"]
        mine = {v["id"] for i, v in enumerate(gt["videos"]) if i % world_size == rank}
        report["videos"] = sorted(mine)
        ev = YTVISEvaluator(ds["name"], output_dir=out_dirs[rank])  # distributed=True (default)
        ev.reset()
        _feed(ev, gt, _oracle(gt, ds["id_map"], mine))
        report["result"] = ev.evaluate()
        comm.synchronize()
    finally:
        dist.destroy_process_group()
    with open(os.path.join(report_dir, "rank{}.json".format(rank)), "w") as f:
        json.dump(report, f)


def test_distributed_gather_two_gloo_processes(dataset, tmp_path):
    import torch.multiprocessing as mp

    gt = dataset["gt"]
    ds = {k: dataset[k] for k in ("name", "json", "image_root", "gt", "id_map")}
    out_dirs = [str(tmp_path / "rank0"), str(tmp_path / "rank1")]
    # fork: no re-import of torch/detectron2 in the children (~0.2 s instead of ~10 s on 2 cores);
    # the workers are module-level, so "spawn" works too where fork is unavailable.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.start_processes(
        _gather_worker,
        args=(2, _free_port(), ds, out_dirs, str(tmp_path)),
        nprocs=2,
        join=False,
        start_method=method,
    )
    deadline = time.monotonic() + 120
    try:
        while not ctx.join(timeout=1):
            assert time.monotonic() < deadline, "gloo workers hung"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()
    reports = [json.loads((tmp_path / "rank{}.json".format(r)).read_text()) for r in (0, 1)]
    for r, rep in enumerate(reports):
        assert (rep["world_size"], rep["rank"], rep["is_main"]) == (2, r, r == 0)
    # each rank saw only part of the data, both halves together are the whole split
    assert reports[0]["videos"] and reports[1]["videos"]
    assert sorted(reports[0]["videos"] + reports[1]["videos"]) == [v["id"] for v in gt["videos"]]
    # rank 0 scores the gathered results of both ranks, rank 1 returns {} and writes nothing
    segm = reports[0]["result"]["segm"]
    assert segm["AP"] == pytest.approx(100.0) and segm["AR10"] == pytest.approx(100.0)
    assert reports[1]["result"] == {}
    assert not os.path.exists(out_dirs[1])
    written = _read_zip(os.path.join(out_dirs[0], "results.zip"))
    assert len(written) == len(gt["annotations"])
    by_rank = [{r["video_id"] for r in written} & set(rep["videos"]) for rep in reports]
    with_gt = {a["video_id"] for a in gt["annotations"]}
    for rep, got in zip(reports, by_rank, strict=True):
        assert got == set(rep["videos"]) & with_gt  # both ranks' entries are in the file
    assert check_results(gt, written) == []


# ------------------------------------------------------------------------------------ end to end
_LOGGERS = ("detectron2", "fvcore", "maskprop_d2", "d2")


@pytest.fixture
def one_thread():
    """Intra-op threads spin-wait: on a busy 2-core machine 2 threads run ~15x slower than 1."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def restore_loggers():
    """train_net/default_setup add handlers and turn propagation off: undo that afterwards."""
    saved = {}
    for n in _LOGGERS:
        lg = logging.getLogger(n)
        saved[n] = (list(lg.handlers), lg.level, lg.propagate)
    yield
    for n, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(n)
        for h in list(lg.handlers):
            if h not in handlers:
                lg.removeHandler(h)
                h.close()
        lg.setLevel(level)
        lg.propagate = propagate


def _import_train_net():
    return load_script("train_net", "train_net.py")


def test_train_net_eval_only_end_to_end(
    dataset, tiny_weights, tmp_path, restore_loggers, one_thread
):
    weights = tiny_weights  # random init
    train_net = _import_train_net()
    out_dir = tmp_path / "out"
    args = train_net.default_argument_parser().parse_args(
        [
            "--config-file",
            TINY_CONFIG,
            "--eval-only",
            "MODEL.WEIGHTS",
            str(weights),
            "MODEL.DEVICE",
            "cpu",
            "OUTPUT_DIR",
            str(out_dir),
            "DATASETS.TEST",
            '("{}",)'.format(dataset["name"]),
            "INPUT.CLIP.HALF_LENGTH",
            "1",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",
            "MODEL.MASKPROP.INFERENCE.SCORE_THRESH",
            "0.0",
            "MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME",
            "3",
            "TEST.DETECTIONS_PER_IMAGE",
            "10",
        ]
    )
    res = train_net.main(args)

    assert isinstance(res, dict) and "segm" in res
    segm = res["segm"]
    assert set(SUMMARY_KEYS) <= set(segm)
    for k, v in segm.items():
        assert isinstance(v, float) and (math.isnan(v) or 0.0 <= v <= 100.0), (k, v)
    assert any(k.startswith("AP-") for k in segm)
    zip_path = out_dir / "inference" / "results.zip"
    assert zip_path.is_file()
    written = _read_zip(zip_path)
    assert written, "a random model with thresholds at 0 should produce some tracks"
    assert check_results(dataset["gt"], written) == []
    assert {r["video_id"] for r in written} <= {v["id"] for v in dataset["gt"]["videos"]}
    assert cli_main(["--check", dataset["json"], str(zip_path)]) == 0


def test_train_net_periodic_eval_writes_ap_and_prop_signal(
    dataset, tmp_path, restore_loggers, one_thread
):
    """TEST.EVAL_PERIOD runs the streaming evaluator during training; its AP and the
    propagation head's per-δ soft IoU reach metrics.json (detectron2's EventStorage)."""
    train_net = _import_train_net()
    out_dir = tmp_path / "train"
    name = '("{}",)'.format(dataset["name"])
    args = train_net.default_argument_parser().parse_args(
        [
            "--config-file", TINY_CONFIG,
            "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out_dir), "SEED", "3",
            "DATASETS.TRAIN", name, "DATASETS.TEST", name,
            "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "1", "SOLVER.WARMUP_ITERS", "1",
            "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "100", "TEST.EVAL_PERIOD", "2",
            "INPUT.CLIP.HALF_LENGTH", "1",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
            "MODEL.MASKPROP.INFERENCE.SCORE_THRESH", "0.0",
            "MODEL.MASKPROP.INFERENCE.TOPK_PER_FRAME", "2",
        ]
    )
    train_net.main(args)
    records = [json.loads(ln) for ln in open(out_dir / "metrics.json") if ln.strip()]
    evals = [r for r in records if "segm/AP" in r]
    # after iteration 2 (index 1), then once more when training ends
    assert len(evals) == 2 and evals[0]["iteration"] == 1
    assert all(0.0 <= r["segm/AP"] <= 100.0 for r in evals)
    trained = [r for r in records if "total_loss" in r]
    assert trained and any(k.startswith("prop_siou/d") for r in trained for k in r)


def test_trainer_test_calls_the_given_evaluators(dataset, one_thread, restore_loggers):
    """Trainer.test is detectron2's loop: the evaluators passed in receive every video's
    result entries, and the model gets its training mode back."""
    from detectron2.evaluation import DatasetEvaluator

    class Recorder(DatasetEvaluator):
        def reset(self):
            self.videos = []

        def process(self, inputs, outputs):
            for video, entries in zip(inputs, outputs, strict=True):
                self.videos.append((video["video_id"], int(video["length"]), entries))

        def evaluate(self):
            return {"recorder": {"videos": float(len(self.videos))}}

    cfg, model = tiny_video_model(
        "DATASETS.TEST", (dataset["name"],), "INPUT.CLIP.HALF_LENGTH", 1
    )
    model.train()
    rec = Recorder()
    res = _import_train_net().Trainer.test(cfg, model, evaluators=[rec])
    assert res == {"recorder": {"videos": 3.0}}
    assert sorted(v for v, _, _ in rec.videos) == sorted(v["id"] for v in dataset["gt"]["videos"])
    assert any(entries for _, _, entries in rec.videos)
    for _, length, entries in rec.videos:
        for e in entries:
            assert len(e["segmentations"]) == length
    assert model.training
