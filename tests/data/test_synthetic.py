"""The synthetic YouTube-VIS generator: determinism, format, and the VIS difficulties it promises
(occlusion, re-appearance, entering/leaving, same-class crossings), all asserted from the JSON."""
import filecmp
import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pycocotools.mask as mask_util
import pytest

from maskprop_d2.data import synthetic as syn

SMALL = dict(num_train=6, num_val=3, length=14, height=56, width=72)


# the difficulties are counted over more and longer videos than the shared dataset has, with the
# generator's default number of objects
@pytest.fixture(scope="module")
def standard(synthetic_dataset_factory):
    return synthetic_dataset_factory(seed=3, max_objects=None, **SMALL)


@pytest.fixture(scope="module")
def hard(synthetic_dataset_factory):
    return synthetic_dataset_factory(seed=3, max_objects=None, difficulty="hard", **SMALL)


def _load(root, split="train"):
    with open(os.path.join(root, f"{split}.json")) as f:
        return json.load(f)


def _both(root):
    return [_load(root, "train"), _load(root, "valid")]


def _boxes_overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _touches_border(box, h, w):
    x, y, bw, bh = box
    return x <= 0 or y <= 0 or x + bw >= w or y + bh >= h


def test_layout_and_format(standard):
    assert sorted(os.listdir(standard)) == ["train", "train.json", "valid", "valid.json"]
    cat_ids = {c["id"] for c in syn.SYNTHETIC_CATEGORIES}
    assert len(cat_ids) >= 4 and len(syn.SYNTHETIC_COLORS) == len(cat_ids)
    for split, n in (("train", SMALL["num_train"]), ("valid", SMALL["num_val"])):
        d = _load(standard, split)
        assert set(d) == {"info", "videos", "annotations", "categories"}
        assert d["categories"] == syn.SYNTHETIC_CATEGORIES
        assert len(d["videos"]) == n and [v["id"] for v in d["videos"]] == list(range(1, n + 1))
        assert d["annotations"], split  # valid.json has annotations too
        ids = [a["id"] for a in d["annotations"]]
        assert len(set(ids)) == len(ids)
        videos = {v["id"]: v for v in d["videos"]}
        for v in d["videos"]:
            assert (v["height"], v["width"], v["length"]) == (56, 72, 14)
            assert len(v["file_names"]) == 14
            for fn in v["file_names"]:
                assert os.path.isfile(os.path.join(standard, split, "JPEGImages", fn)), fn
        for a in d["annotations"]:
            v = videos[a["video_id"]]
            assert a["category_id"] in cat_ids and a["iscrowd"] == 0
            for key in ("segmentations", "areas", "bboxes"):
                assert len(a[key]) == v["length"]
            assert any(s is not None for s in a["segmentations"])
            for seg, area, box in zip(a["segmentations"], a["areas"], a["bboxes"], strict=True):
                assert (seg is None) == (area is None) == (box is None)
                if seg is None:
                    continue
                assert seg["size"] == [v["height"], v["width"]] and isinstance(seg["counts"], str)
                m = mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()})
                assert m.shape == (v["height"], v["width"]) and m.sum() == area > 0
                ys, xs = np.nonzero(m)
                assert box == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_deterministic_for_a_seed(tmp_path):
    kw = dict(num_train=2, num_val=1, length=6, height=40, width=48)
    a = syn.generate_synthetic_dataset(str(tmp_path / "a"), seed=7, **kw)
    b = syn.generate_synthetic_dataset(str(tmp_path / "b"), seed=7, **kw)
    c = syn.generate_synthetic_dataset(str(tmp_path / "c"), seed=8, **kw)
    for split in ("train", "valid"):
        assert filecmp.cmp(f"{a}/{split}.json", f"{b}/{split}.json", shallow=False)
        assert not filecmp.cmp(f"{a}/{split}.json", f"{c}/{split}.json", shallow=False)
        for fn in _load(a, split)["videos"][0]["file_names"]:
            pa, pb, pc = (os.path.join(r, split, "JPEGImages", fn) for r in (a, b, c))
            assert filecmp.cmp(pa, pb, shallow=False)
            assert not filecmp.cmp(pa, pc, shallow=False)


def test_occlusion_and_reappearance(standard):
    gaps = 0
    for d in _both(standard):
        for a in d["annotations"]:
            present = np.flatnonzero([s is not None for s in a["segmentations"]])
            gaps += int((np.diff(present) > 1).any())  # null between two non-null frames
    assert gaps >= 2


def test_visible_area_drops_under_occlusion(standard):
    # from the JSON: a one-frame area drop > 40% of an object well inside the frame (scale
    # changes are a few % per frame, so only occlusion explains it)
    drops = 0
    for d in _both(standard):
        for a in d["annotations"]:
            for t in range(len(a["areas"]) - 1):
                a0, a1 = a["areas"][t], a["areas"][t + 1]
                if a0 is None or a1 is None:
                    continue
                if _touches_border(a["bboxes"][t], 56, 72) or _touches_border(
                    a["bboxes"][t + 1], 56, 72
                ):
                    continue
                drops += a1 < 0.6 * a0
    assert drops >= 1
    # from the ground-truth hook: visible < amodal for a whole object inside the frame
    kw = dict(height=56, width=72, length=14, seed=3)
    found = False
    for i in range(SMALL["num_train"]):
        r = syn.render_synthetic_video(split="train", index=i, **kw)
        for o in r["objects"]:
            am, vis = o["amodal"], o["visible"]
            assert not (vis & ~am).any()
            inner = ~(am[:, 0].any(1) | am[:, -1].any(1) | am[:, :, 0].any(1) | am[:, :, -1].any(1))
            found |= bool((inner & (vis.sum((1, 2)) < am.sum((1, 2)))).any())
    assert found


def test_hook_matches_written_masks(standard):
    d = _load(standard, "valid")
    r = syn.render_synthetic_video(seed=3, split="valid", index=0, height=56, width=72, length=14)
    visible = [o["visible"] for o in r["objects"] if o["visible"].any()]
    annos = [a for a in d["annotations"] if a["video_id"] == 1]
    assert len(annos) == len(visible)
    for a, vis in zip(annos, visible, strict=True):
        for t, seg in enumerate(a["segmentations"]):
            if seg is None:
                assert not vis[t].any()
            else:
                m = mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()})
                assert np.array_equal(m.astype(bool), vis[t])


def test_objects_enter_and_leave(standard):
    starts = ends = 0
    for d in _both(standard):
        for a in d["annotations"]:
            starts += a["segmentations"][0] is None
            ends += a["segmentations"][-1] is None
    assert starts >= 1 and ends >= 1


def _same_class_overlaps(d):
    n = 0
    by_video = {}
    for a in d["annotations"]:
        by_video.setdefault(a["video_id"], []).append(a)
    for annos in by_video.values():
        for a, b in itertools.combinations(annos, 2):
            if a["category_id"] != b["category_id"]:
                continue
            n += any(
                ba is not None and bb is not None and _boxes_overlap(ba, bb)
                for ba, bb in zip(a["bboxes"], b["bboxes"], strict=True)
            )
    return n


def test_same_class_objects_cross(standard):
    assert sum(_same_class_overlaps(d) for d in _both(standard)) >= 2


def _occlusion_measures(d):
    """(interior-null tracks, frame-level box-overlap pairs), both per video."""
    gaps = pairs = 0
    by_video = {}
    for a in d["annotations"]:
        present = np.flatnonzero([s is not None for s in a["segmentations"]])
        gaps += int((np.diff(present) > 1).any())
        by_video.setdefault(a["video_id"], []).append(a)
    for annos in by_video.values():
        for a, b in itertools.combinations(annos, 2):
            pairs += sum(
                ba is not None and bb is not None and _boxes_overlap(ba, bb)
                for ba, bb in zip(a["bboxes"], b["bboxes"], strict=True)
            )
    n = len(d["videos"])
    return gaps / n, pairs / n


def test_hard_has_more_occlusion(standard, hard):
    s_gap, s_pairs = _occlusion_measures(_load(standard))
    h_gap, h_pairs = _occlusion_measures(_load(hard))
    assert h_gap > s_gap and h_pairs > s_pairs
    n_s = len(_load(standard)["annotations"])
    n_h = len(_load(hard)["annotations"])
    assert n_h > n_s


def test_refuses_overwrite_and_cli(tmp_path, capsys):
    kw = dict(num_train=1, num_val=1, length=3, height=32, width=32)
    root = syn.generate_synthetic_dataset(str(tmp_path / "ds"), seed=1, **kw)
    before = open(os.path.join(root, "train.json")).read()
    with pytest.raises(FileExistsError):
        syn.generate_synthetic_dataset(root, seed=2, **kw)
    args = ["--out", root, "--num-train", "1", "--num-val", "1", "--length", "3",
            "--height", "32", "--width", "32", "--seed", "2"]
    # CLI: the same parameters again: reports and leaves the dataset alone
    assert syn.main(args[:-1] + ["1"]) == 0
    assert open(os.path.join(root, "train.json")).read() == before
    # other parameters than the dataset there: an error that names the difference, nothing written
    capsys.readouterr()
    assert syn.main(args) == 2
    assert "seed: 1 -> 2" in capsys.readouterr().err
    assert open(os.path.join(root, "train.json")).read() == before
    assert syn.main(args + ["--overwrite"]) == 0
    assert open(os.path.join(root, "train.json")).read() != before
    assert [p for p in os.listdir(tmp_path) if p != "ds"] == []  # no temp leftovers
    # a non-empty folder that is not a dataset is not clobbered either
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        syn.generate_synthetic_dataset(str(tmp_path / "other"), **kw)
    with pytest.raises(ValueError):
        syn.generate_synthetic_dataset(str(tmp_path / "bad"), difficulty="nope", **kw)


def test_ensure_is_idempotent_and_race_safe(tmp_path, monkeypatch):
    kw = dict(num_train=1, num_val=1, length=3, height=32, width=32)
    root = str(tmp_path / "race")
    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(lambda s: syn.ensure_synthetic_dataset(root, seed=s, **kw), (1, 2)))
    assert results == [root, root]
    assert sorted(os.listdir(tmp_path)) == ["race"]
    mtime = os.path.getmtime(os.path.join(root, "train.json"))
    before = open(os.path.join(root, "train.json")).read()
    assert syn.ensure_synthetic_dataset(root, seed=5, **kw) == root  # no-op
    assert open(os.path.join(root, "train.json")).read() == before
    assert os.path.getmtime(os.path.join(root, "train.json")) == mtime


def test_default_root(monkeypatch):
    monkeypatch.delenv("MASKPROP_SYNTHETIC_ROOT", raising=False)
    monkeypatch.setenv("DETECTRON2_DATASETS", "/data/x")
    assert syn.DEFAULT_SYNTHETIC_ROOT() == os.path.join("/data/x", "synthetic_ytvis")
    monkeypatch.setenv("MASKPROP_SYNTHETIC_ROOT", "/elsewhere/syn")
    assert syn.DEFAULT_SYNTHETIC_ROOT() == "/elsewhere/syn"
