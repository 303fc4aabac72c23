"""The detectron2 this project runs on: Mask R-CNN builds, trains a step and infers on CPU."""

import importlib.util
import os

import pytest
import torch

from tests.helpers import REPO_ROOT, load_script


def _tiny_mask_rcnn_cfg():
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    )
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 64
    return cfg


def test_imports_and_env_report():
    import detectron2
    from detectron2.utils.collect_env import collect_env_info

    import maskprop_d2  # noqa: F401

    assert tuple(int(x) for x in detectron2.__version__.split(".")[:2]) >= (0, 6)
    assert "detectron2" in collect_env_info()


def test_stand_in_ops_raise_clear_error():
    spec = importlib.util.find_spec("detectron2")
    stand_in = os.path.join(os.path.dirname(spec.origin), "_C.py")
    if not os.path.isfile(stand_in):
        pytest.skip("detectron2 was built with its compiled ops")
    from detectron2 import _C

    assert _C.has_cuda() is False
    with pytest.raises(RuntimeError, match="deform_conv_forward.*MaskProp does not need"):
        _C.deform_conv_forward(None)


def test_mask_rcnn_trains_one_step_and_infers_on_cpu():
    from detectron2.modeling import build_model
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    cfg = _tiny_mask_rcnn_cfg()
    model = build_model(cfg)
    h, w = 64, 96
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 40.0, 50.0]]))
    inst.gt_classes = torch.tensor([1])
    masks = torch.zeros(1, h, w, dtype=torch.bool)
    masks[0, 12:50, 10:40] = True
    inst.gt_masks = BitMasks(masks)
    batch = [{"image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8), "instances": inst}]

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with EventStorage(0):
        losses = model(batch)
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    opt.zero_grad()
    total.backward()
    opt.step()

    model.eval()
    with torch.no_grad():
        out = model([{"image": batch[0]["image"], "height": 32, "width": 48}])
    assert out[0]["instances"].image_size == (32, 48)


# ---- the registry install: the v0.6 sources plus exactly the documented compatibility patch ----


def _installer():
    """tools/install_detectron2.py as a module (it is a script, not part of the package)."""
    return load_script("install_detectron2", "tools", "install_detectron2.py")


def _registry_record():
    """(installer module, install record) of this environment's registry install, or skip."""
    inst = _installer()
    if not inst.is_registry_install():
        pytest.skip("detectron2 is the user's own build, not the registry install")
    record = inst.read_record()
    if record is None or not os.path.isfile(record.get("sdist", "")):
        pytest.skip(
            "the verified sdist is not kept in {} (run tools/install_detectron2.py --force to "
            "reinstall and keep it)".format(inst.record_dir())
        )
    return inst, record


def _sdist_sources(sdist):
    """{path under detectron2/: bytes} of the sdist's detectron2 package (no C++ sources)."""
    import tarfile

    out = {}
    with tarfile.open(sdist) as tar:
        top = os.path.commonpath(tar.getnames())
        for member in tar.getmembers():
            if not member.isfile():
                continue
            rel = os.path.relpath(member.name, top)
            if rel.startswith("detectron2/") and not rel.startswith("detectron2/layers/csrc/"):
                out[rel] = tar.extractfile(member).read()
    return out


def test_registry_sources_differ_from_sdist_only_in_patched_lines():
    inst, record = _registry_record()
    assert inst.sha256_of(record["sdist"]) == inst.SDIST_SHA256
    patch = inst.patch_by_file(inst.load_patch())
    sdist = _sdist_sources(record["sdist"])
    pkg = os.path.dirname(inst.installed_package_dir())

    installed = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(pkg, "detectron2")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            installed.add(os.path.relpath(os.path.join(dirpath, name), pkg))
    # Every installed file comes from the sdist, except the stand-in for the compiled ops; every
    # Python source and model-zoo config of the sdist is installed.
    assert installed - set(sdist) == {"detectron2/_C.py"}
    configs = "detectron2/model_zoo/configs/"
    wanted = {p for p in sdist if p.endswith(".py") or p.startswith(configs)}
    assert wanted - installed == set()

    changed = {}
    for rel in sorted(installed - {"detectron2/_C.py"}):
        with open(os.path.join(pkg, rel), "rb") as f:
            now = f.read()
        if now == sdist[rel]:
            continue
        old_lines = sdist[rel].decode("utf-8").split("\n")
        new_lines = now.decode("utf-8").split("\n")
        assert len(old_lines) == len(new_lines), rel + ": lines added or removed"
        changed[rel] = {
            i + 1: (a, b)
            for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True))
            if a != b
        }
    expected = {
        rel: {n: (e["old"], e["new"]) for n, e in by_line.items()} for rel, by_line in patch.items()
    }
    assert changed == expected


def test_patch_is_documented_line_by_line():
    inst = _installer()
    with open(os.path.join(REPO_ROOT, "docs", "detectron2_patch.md"), encoding="utf-8") as f:
        doc = f.read()
    for e in inst.load_patch():
        assert "`{}:{}`".format(e["file"], e["line"]) in doc, e
        assert "`{}`".format(e["old"].strip()) in doc, e
        assert "`{}`".format(e["new"].strip()) in doc, e


def test_patch_refuses_a_differing_sdist_line(tmp_path):
    inst = _installer()
    entries = inst.load_patch()
    by_file = inst.patch_by_file(entries)
    # A tree whose files read as the patch expects, except one line of one file.
    for rel, by_line in by_file.items():
        n = max(by_line)
        lines = ["# filler"] * n
        for k, e in by_line.items():
            lines[k - 1] = e["old"]
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("\n".join(lines) + "\n")
    first = entries[0]
    target = tmp_path / first["file"]
    pristine = target.read_text()
    target.write_text(pristine.replace(first["old"], first["old"] + "  # edited", 1))
    before = {rel: (tmp_path / rel).read_text() for rel in by_file}
    with pytest.raises(ValueError, match="{} line {}".format(first["file"], first["line"])):
        inst.apply_patch(str(tmp_path), entries)
    # nothing was written
    assert {rel: (tmp_path / rel).read_text() for rel in by_file} == before

    target.write_text(pristine)
    assert inst.apply_patch(str(tmp_path), entries) == len(entries)
    for rel, by_line in by_file.items():
        lines = (tmp_path / rel).read_text().split("\n")
        for n, e in by_line.items():
            assert lines[n - 1] == e["new"]


def test_bad_patch_file_is_an_error_naming_it(tmp_path):
    inst = _installer()
    bad = tmp_path / "patch.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        inst.load_patch(str(bad))
    bad.write_text(
        '{"sdist_sha256": "%s", "lines": [{"file": "detectron2/x.py"}]}' % inst.SDIST_SHA256
    )
    with pytest.raises(ValueError, match=r"patch.json: lines\[0\] needs 'line'"):
        inst.load_patch(str(bad))


def test_model_zoo_and_v06_code_paths_work_on_this_stack():
    """The lines the patch changes, run: without pkg_resources, on numpy >= 2 / Pillow >= 10."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pkg_resources'] = None\n"
        "import numpy as np\n"
        "from detectron2 import model_zoo\n"
        "p = model_zoo.get_config_file('COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml')\n"
        "assert p.endswith('mask_rcnn_R_50_FPN_3x.yaml')\n"
        "from detectron2.data.transforms import ExtentTransform\n"
        "t = ExtentTransform((0, 0, 8, 8), (4, 4))\n"
        "assert t.apply_image(np.zeros((8, 8, 3), np.uint8)).shape == (4, 4, 3)\n"
        "from detectron2.structures.masks import polygons_to_bitmask, PolygonMasks\n"
        "m = polygons_to_bitmask([[0.0, 0.0, 6.0, 0.0, 6.0, 6.0]], 8, 8)\n"
        "assert m.dtype == bool and 0 < m.sum() < 64\n"
        "assert PolygonMasks([[[0.0, 0.0, 6.0, 0.0, 6.0, 6.0]]]).nonempty().tolist() == [True]\n"
        "from detectron2.data.build import print_instances_class_histogram\n"
        "print_instances_class_histogram([{'annotations': [{'category_id': 0}]}], ['a'])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_v06_gaps_on_a_modern_stack_are_closed():
    """The lines the patch changes beyond numpy/Pillow/setuptools, run: ``detectron2.export``
    imports without caffe2; torch's own LR schedulers are saved and restored by the
    ``LRScheduler`` hook; ``MapDataset`` retries another element when its mapper returns None
    (``random.sample`` on a set raised on Python >= 3.11)."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "import detectron2.export as ex\n"
        "assert hasattr(ex, 'TracingAdapter')\n"
        "from detectron2.engine import hooks\n"
        "p = torch.nn.Parameter(torch.zeros(1))\n"
        "opt = torch.optim.SGD([p], lr=1.0)\n"
        "sch = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)\n"
        "h = hooks.LRScheduler(opt, sch)\n"
        "opt.step(); sch.step(); opt.step(); sch.step()\n"
        "state = h.state_dict()\n"
        "assert state.get('last_epoch') == 2, state\n"
        "sch2 = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)\n"
        "hooks.LRScheduler(opt, sch2).load_state_dict(state)\n"
        "assert sch2.last_epoch == 2, sch2.last_epoch\n"
        "from detectron2.data.common import MapDataset\n"
        "ds = MapDataset(list(range(5)), lambda x: None if x == 0 else x)\n"
        "assert ds[0] in (1, 2, 3, 4)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_own_detectron2_without_pkg_resources_gets_a_setuptools_that_has_it(monkeypatch):
    import subprocess

    inst = _installer()
    calls = []
    stderr = "ModuleNotFoundError: No module named 'pkg_resources'\n"
    monkeypatch.setattr(
        inst.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", stderr)
    )
    monkeypatch.setattr(inst, "pip", calls.append)
    assert inst.own_detectron2_constraints() == ["setuptools<81"]
    assert calls == [["setuptools<81"]]

    calls.clear()
    monkeypatch.setattr(
        inst.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", "")
    )
    assert inst.own_detectron2_constraints() == []
    assert calls == []
