"""Several processes (gloo on the CPU, started by torchrun) train and evaluate as one process does.

The training runs compare weights between 1 process x 4 clips and 2 processes x 2 clips. DDP
averages the ranks' gradients, which equals the 1-process gradient only when each loss is a sum
of per-clip terms over a batch-independent normaliser. The data and config make it so, exactly:

* 4 training videos of 2 identical frames with exactly 2 objects each: every clip is its video
  whichever frame is the centre (no random content), every batch of 4 is the whole training set
  (the order inside a batch does not matter), and every image carries 2 objects;
* the RPN keeps all its anchors (a constant normaliser per image) and the ROI heads see only the
  GT boxes as proposals (2 per image: mean losses over a fixed count per image);
* ``naiveSyncBN`` in the backbone (batch statistics over both ranks, as over the 4 clips of one
  process), no colour jitter, no flip; SGD from the same weights.

Left is float rounding (reduction order, the sync-BN formula): |W_2proc - W_1proc| was 6e-4 of
|W_1proc - W_start| here after 3 steps of momentum-free SGD at a small learning rate (1e-5 with
momentum 0.9, the setting used: a resumed run must restore the momentum buffers; at 10x the rate
the loss jumps and the rounding grows); the tolerance is 5e-3. The runs use frames upscaled 2×
(192 px): at the tiny config's 3× (288 px) the same runs differ by 1.7e-2, nearly all of it in
the ResNet's sync-BN layers (the E[x²] - E[x]² variance of the all-reduced statistics loses more
digits on the larger, smoother frames than one process's batch norm does).
One process trained on 2 clips a step (a rank that does not synchronise) was off by 1.1 (110 %).
Every subprocess has a timeout and is killed with its process group: a hang fails the test.
"""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from maskprop_d2 import distributed as mdist
from tests.helpers import REPO_ROOT, TINY_CONFIG

MASKTRACK_CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "masktrack_tiny.yaml")
TRAIN_NET = os.path.join(REPO_ROOT, "train_net.py")
TOL = 5e-3  # |W_2proc - W_1proc| / |W_1proc - W_start| (module docstring)
TIMEOUT = 300  # seconds, per run (a few iterations take ~10 s; a hang stops here)

EXACT = [
    # SGD with momentum: the resumed run continues only if the checkpoint restores the momentum
    # buffers (train_net.Trainer saves the optimizer, which detectron2 v0.6 leaves out)
    "SOLVER.OPTIMIZER", "SGD", "SOLVER.MOMENTUM", 0.9, "SOLVER.BASE_LR", 0.002,
    "SOLVER.WARMUP_ITERS", 0,
    "SOLVER.STEPS", "()", "SOLVER.IMS_PER_BATCH", 4, "SOLVER.CHECKPOINT_PERIOD", 100,
    "MODEL.RESNETS.NORM", "naiveSyncBN", "MODEL.RPN.BATCH_SIZE_PER_IMAGE", 1 << 20,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", 0, "INPUT.COLOR_JITTER.ENABLED", False,
    "INPUT.RANDOM_FLIP", "none", "DATALOADER.NUM_WORKERS", 0,
    # the 2x input (module docstring: the sync-BN formula's rounding grows with the input)
    "INPUT.MIN_SIZE_TRAIN", "(192,)", "INPUT.MAX_SIZE_TRAIN", 320,
]
# inference: every val video gets results, identity metrics too
EVAL = ["MODEL.MASKPROP.INFERENCE.SCORE_THRESH", 0.05, "TEST.IDENTITY_METRICS", True]


def _run(nproc, args, root, config=TINY_CONFIG, env=None):
    """train_net.py in 1 process, or under torchrun in ``nproc``; (returncode, output)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    full_env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MASKPROP_SYNTHETIC_ROOT=str(root))
    full_env.update(env or {})
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd += [TRAIN_NET, "--config-file", config] + [str(a) for a in args]
    proc = subprocess.Popen(cmd, cwd=str(root), env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers
        out, _ = proc.communicate()
        pytest.fail(f"{nproc}-process run did not end in {TIMEOUT} s (hang?):\n{out[-3000:]}")
    return proc.returncode, out


def _ok(nproc, args, root, **kw):
    rc, out = _run(nproc, args, root, **kw)
    assert rc == 0, out[-4000:]
    if nproc > 1:
        assert f"World size: {nproc}" in out, out[-3000:]
    return out


def _weights(path):
    """The parameters of a checkpoint (float64), without the batch-norm running statistics:
    ``naiveSyncBN`` updates ``running_var`` with the biased variance, detectron2's ``BN`` on one
    process with the unbiased one."""
    model = torch.load(str(path), map_location="cpu", weights_only=True)["model"]
    return {k: v.double() for k, v in model.items()
            if v.is_floating_point() and ".running_" not in k}  # fmt: skip


def _rel_diff(a, b, start):
    """|a - b| / |a - start| over all tensors (a and b trained from ``start``)."""
    num = sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5
    den = sum(float(((a[k] - start[k]) ** 2).sum()) for k in a) ** 0.5
    assert den > 0, "the weights did not change"
    return num / den


def _results(out_dir):
    with open(os.path.join(out_dir, "inference", "results.json")) as f:
        entries = json.load(f)
    return sorted(json.dumps(e, sort_keys=True) for e in entries)


def _metrics(log):
    return [line.split("copypaste: ", 1)[1] for line in log.splitlines() if "copypaste: " in line]


def _static_split(src_root, dst_root, videos):
    """A train.json of ``videos`` (video record, annotations) whose frame 0 is listed twice; the
    frames and the val split are the source dataset's."""
    with open(src_root / "train.json") as f:
        data = json.load(f)
    out = {"info": data["info"], "categories": data["categories"], "videos": [], "annotations": []}
    for video, anns in videos:
        v = dict(video, length=2, file_names=[video["file_names"][0]] * 2)
        out["videos"].append(v)
        for a in anns:
            out["annotations"].append(dict(
                a, id=len(out["annotations"]) + 1, segmentations=[a["segmentations"][0]] * 2,
                areas=[a["areas"][0]] * 2, bboxes=[a["bboxes"][0]] * 2,
            ))  # fmt: skip
    os.makedirs(dst_root)
    for name in ("train", "valid", "valid.json"):
        os.symlink(src_root / name, dst_root / name)
    with open(dst_root / "train.json", "w") as f:
        json.dump(out, f)
    return dst_root


@pytest.fixture(scope="module")
def data(synthetic_dataset_factory, tmp_path_factory):
    """(root with 4 static 2-object training videos, root with one normal and one crowd-only
    video: its clips have no instance)."""
    src = synthetic_dataset_factory(num_train=8, num_val=3, max_objects=3)
    with open(src / "train.json") as f:
        train = json.load(f)
    picked = []
    for video in train["videos"]:
        anns = [a for a in train["annotations"] if a["video_id"] == video["id"]
                and a["segmentations"][0] is not None and a["areas"][0] >= 20]  # fmt: skip
        if len(anns) >= 2:
            picked.append((video, anns[:2]))
    assert len(picked) >= 4, "the generated dataset has too few videos with 2 visible objects"
    base = tmp_path_factory.mktemp("distributed")
    static = _static_split(src, base / "static", picked[:4])
    (video, anns), (video2, anns2) = picked[0], picked[1]
    crowd = [dict(anns2[0], iscrowd=1)]
    empty = _static_split(src, base / "empty", [(video, anns), (video2, crowd)])
    return static, empty


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory, tiny_weights):
    """MaskProp, 3 iterations from ``tiny_weights``: 1 process x 4 clips and 2 processes x 2
    clips (with a checkpoint after iteration 2 and an evaluation at iteration 2 and at the end)."""
    static, _ = data
    work = tmp_path_factory.mktemp("trained")
    opts = EXACT + EVAL + ["MODEL.WEIGHTS", tiny_weights, "SOLVER.MAX_ITER", 3]
    one = _ok(1, opts + ["OUTPUT_DIR", work / "one", "DATASETS.TEST", "()"], static)
    two = _ok(2, opts + ["OUTPUT_DIR", work / "two", "SOLVER.CHECKPOINT_PERIOD", 2,
                         "TEST.EVAL_PERIOD", 2], static)  # fmt: skip
    return work, one, two


@pytest.mark.slow
def test_two_processes_train_as_one(trained, tiny_weights):
    work, _, two = trained
    start = _weights(tiny_weights)
    one_w = _weights(work / "one" / "model_final.pth")
    two_w = _weights(work / "two" / "model_final.pth")
    assert _rel_diff(one_w, two_w, start) < TOL
    # the periodic evaluation ran at iteration 2 and at the end, on both ranks, without a hang
    assert two.count("Evaluation results for synthetic_ytvis_val in csv format") == 2, two[-3000:]


@pytest.mark.slow
def test_two_process_resume_gives_the_same_weights(trained, data, tmp_path):
    """A 2-process run stopped after its checkpoint of iteration 2 (model_0000001.pth) and
    resumed ends with the weights of the run that was not stopped (SGD momentum included)."""
    static, _ = data
    work, _, _ = trained
    out = tmp_path / "resumed"
    os.makedirs(out)
    shutil.copy(work / "two" / "model_0000001.pth", out)
    (out / "last_checkpoint").write_text("model_0000001.pth")
    log = _ok(2, ["--resume"] + EXACT + ["OUTPUT_DIR", out, "SOLVER.MAX_ITER", 3,
                                         "DATASETS.TEST", "()"], static)  # fmt: skip
    assert "model_0000001.pth" in log
    ckpt = torch.load(str(out / "model_0000001.pth"), map_location="cpu", weights_only=True)
    opt_state = ckpt["trainer"]["_trainer"]["optimizer"]["state"]
    assert ckpt["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 2
    start = _weights(out / "model_0000001.pth")
    whole, resumed = _weights(work / "two" / "model_final.pth"), _weights(out / "model_final.pth")
    # Without the momentum buffers the resumed step would lack lr x momentum x buffer: 58 % of
    # the step here. Seen with them: 1.8e-4 (the resumed run's first batch is split over the
    # ranks in another order: rounding, and the sync-BN statistics' summation order).
    step = sum(float(((whole[k] - start[k]) ** 2).sum()) for k in whole) ** 0.5
    lost = 0.002 * 0.9 * sum(float((s["momentum_buffer"].double() ** 2).sum())
                             for s in opt_state.values()) ** 0.5  # fmt: skip
    assert lost > 0.1 * step
    assert _rel_diff(whole, resumed, start) < 2e-3


@pytest.mark.slow
def test_two_process_eval_only_equals_one_process(trained, data, tmp_path):
    static, _ = data
    work, _, two_train = trained
    weights = work / "two" / "model_final.pth"
    opts = ["--eval-only"] + EVAL + ["MODEL.WEIGHTS", weights]
    one = _ok(1, opts + ["OUTPUT_DIR", tmp_path / "one"], static)
    two = _ok(2, opts + ["OUTPUT_DIR", tmp_path / "two"], static)
    results = _results(tmp_path / "one")
    assert results == _results(tmp_path / "two")  # every entry once: no video lost or doubled
    with open(static / "valid.json") as f:
        videos = {v["id"] for v in json.load(f)["videos"]}
    assert {json.loads(e)["video_id"] for e in results} == videos
    assert _metrics(one) and _metrics(one) == _metrics(two)
    assert "Task: identity" in one
    # the training run's final evaluation (2 processes, same weights) too
    assert results == _results(work / "two") and _metrics(two_train)[-len(_metrics(one)):] == (
        _metrics(one)
    )


@pytest.mark.slow
def test_masktrack_two_processes_train_as_one(trained, data, tmp_path):
    """MaskTrack R-CNN on the frozen detector: only the tracking head has gradients (DDP
    synchronises just those); key boxes are the GT boxes (no RPN proposals at test settings)."""
    static, _ = data
    work, _, _ = trained
    detector = work / "one" / "model_final.pth"
    start = _masktrack_start(detector, tmp_path / "start.pth")
    opts = EXACT + ["MODEL.WEIGHTS", start, "MODEL.RPN.POST_NMS_TOPK_TEST", 0,
                    "SOLVER.MAX_ITER", 3, "DATASETS.TEST", "()"]  # fmt: skip
    _ok(1, opts + ["OUTPUT_DIR", tmp_path / "one"], static, config=MASKTRACK_CONFIG)
    _ok(2, opts + ["OUTPUT_DIR", tmp_path / "two"], static, config=MASKTRACK_CONFIG)
    one = _weights(tmp_path / "one" / "model_final.pth")
    two = _weights(tmp_path / "two" / "model_final.pth")
    init = _weights(start)
    head = {k for k in init if k.startswith("roi_heads.track_head.")}
    assert head and init.keys() == one.keys() == two.keys()
    for k in init.keys() - head:  # the frozen detector is unchanged in both
        assert torch.equal(one[k], init[k]) and torch.equal(two[k], init[k]), k
    one, two, init = ({k: w[k] for k in head} for w in (one, two, init))
    assert _rel_diff(one, two, init) < TOL


def _masktrack_start(detector, path):
    """``detector``'s weights + a tracking head initialised here: the start of both runs."""
    from detectron2.modeling import build_model

    from maskprop_d2 import get_maskprop_cfg

    cfg = get_maskprop_cfg(MASKTRACK_CONFIG, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    torch.manual_seed(0)
    head = build_model(cfg).roi_heads.track_head.state_dict()
    model = torch.load(str(detector), map_location="cpu", weights_only=True)["model"]
    model.update({"roi_heads.track_head." + k: v for k, v in head.items()})
    torch.save({"model": model}, str(path))
    return path


@pytest.mark.slow
def test_a_rank_with_no_instances_does_not_stop_ddp(data, tmp_path, tiny_weights):
    """Each batch of 2 holds both videos: one rank gets the crowd-only video's clip (no
    instance: the propagation head and most of the mask head get no gradient there)."""
    _, empty = data
    opts = ["MODEL.WEIGHTS", tiny_weights, "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", 3,
            "SOLVER.STEPS", "()", "DATASETS.TEST", "()",
            "OUTPUT_DIR", tmp_path / "out"]  # fmt: skip
    log = _ok(2, opts, empty)
    assert (tmp_path / "out" / "model_final.pth").is_file()
    assert "iter: 2" in log


# ----------------------------------------------------------------------------- no processes
def test_launcher_env():
    base = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}  # fmt: skip
    job = mdist.launcher_env(base)
    assert job == (3, 4, 1, 2) and job.num_machines == 2 and job.machine_rank == 1
    assert mdist.launcher_env({}) is None
    assert mdist.launcher_env({"WORLD_SIZE": "1"}) is None  # torchrun --nproc_per_node 1


@pytest.mark.parametrize(
    "change, words",
    [
        ({"MASTER_PORT": None}, "MASTER_PORT not set"),
        ({"LOCAL_WORLD_SIZE": None, "RANK": None}, "RANK, LOCAL_WORLD_SIZE not set"),
        ({"RANK": "4"}, "RANK=4 is not in [0, WORLD_SIZE=4)"),
        ({"LOCAL_RANK": "0"}, "LOCAL_RANK=0 does not match RANK=3"),
        ({"LOCAL_WORLD_SIZE": "3"}, "LOCAL_WORLD_SIZE=3 does not divide WORLD_SIZE=4"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ],
)
def test_launcher_env_that_cannot_be_joined(change, words):
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}  # fmt: skip
    for k, v in change.items():
        if v is None:
            del env[k]
        else:
            env[k] = v
    with pytest.raises(mdist.DistributedSetupError) as e:
        mdist.launcher_env(env)
    assert words in str(e.value)


def test_mpi_copies_without_world_size_are_refused():
    with pytest.raises(mdist.DistributedSetupError, match="OMPI_COMM_WORLD_SIZE=2"):
        mdist.launcher_env({"OMPI_COMM_WORLD_SIZE": "2"})
    assert mdist.launcher_env({"OMPI_COMM_WORLD_SIZE": "1"}) is None


def test_launch_refuses_num_gpus_under_a_launcher(monkeypatch):
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(mdist.DistributedSetupError, match="--num-gpus 2"):
        mdist.launch(pytest.fail, 2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_launch_num_gpus_on_cpu_points_to_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    if not mdist._d2_launch_needs_cuda():
        pytest.skip("this detectron2's launch runs on the CPU")
    with pytest.raises(mdist.DistributedSetupError, match="torchrun --nproc_per_node 2"):
        mdist.launch(pytest.fail, 2)


@pytest.mark.slow
def test_train_net_under_an_unjoinable_launcher_stops_before_training(tmp_path):
    rc, out = _run(1, ["OUTPUT_DIR", tmp_path / "out"], tmp_path, env={"WORLD_SIZE": "2"})
    assert rc != 0
    assert "DistributedSetupError" in out and "RANK, LOCAL_RANK" in out, out[-3000:]
    assert not (tmp_path / "out").exists()


def _as_rank_of_two(monkeypatch, rank, cuda_devices):
    """This process as ``rank`` of a torchrun job of 2 on one machine with that many GPUs."""
    env = {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
           "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_devices)


@pytest.mark.parametrize("public", [False, True], ids=["v0.6 glue", "detectron2 function"])
def test_launch_under_a_launcher_makes_the_local_group(monkeypatch, public):
    """Rank 0 of 2 on one machine, the process group faked (no second process): the local group
    comes from detectron2's ``comm.create_local_process_group`` when it has one, else from the
    v0.6 glue (``dist.new_group`` of this machine's ranks), which clears it afterwards."""
    from detectron2.utils import comm

    _as_rank_of_two(monkeypatch, 0, cuda_devices=0)
    calls = []
    monkeypatch.setattr(mdist.dist, "init_process_group", lambda *a, **k: calls.append("init"))
    monkeypatch.setattr(mdist.dist, "destroy_process_group", lambda: calls.append("destroy"))
    monkeypatch.setattr(mdist.dist, "new_group", lambda ranks: ("group", tuple(ranks)))
    monkeypatch.setattr(comm, "_LOCAL_PROCESS_GROUP", None)
    if public:
        monkeypatch.setattr(comm, "create_local_process_group",
                            lambda n: calls.append(("local group", n)), raising=False)  # fmt: skip
    else:
        monkeypatch.delattr(comm, "create_local_process_group", raising=False)

    def main():
        calls.append(("main", comm._LOCAL_PROCESS_GROUP))
        return 7

    assert mdist.launch(main, 1) == 7
    if public:
        assert calls == ["init", ("local group", 2), ("main", None), "destroy"]
    else:
        assert calls == ["init", ("main", ("group", (0, 1))), "destroy"]
    assert comm._LOCAL_PROCESS_GROUP is None


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_cpu_processes_join_with_gloo_on_a_machine_with_fewer_gpus(monkeypatch, device):
    """Rank 1 of 2 on a machine with one GPU (CUDA faked): a CPU config joins with gloo; a CUDA
    one is refused before joining (no second GPU for LOCAL_RANK 1)."""
    _as_rank_of_two(monkeypatch, 1, cuda_devices=1)
    backends = []
    monkeypatch.setattr(mdist.dist, "init_process_group", lambda b, **k: backends.append(b))
    monkeypatch.setattr(mdist.dist, "destroy_process_group", lambda: None)
    monkeypatch.setattr(mdist, "_create_local_process_group", lambda job: None)
    monkeypatch.setattr(mdist.comm, "synchronize", lambda: None)
    if device == "cpu":
        assert mdist.launch(lambda: 7, 1, device="cpu") == 7
        assert backends == ["gloo"]
    else:
        with pytest.raises(mdist.DistributedSetupError, match="LOCAL_RANK=1 but this machine"):
            mdist.launch(lambda: 7, 1, device=device)
        assert backends == []
