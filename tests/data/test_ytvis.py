"""YouTube-VIS loader, validation and registration (maskprop_d2.data.ytvis / builtin)."""
import copy
import importlib
import json
import os
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

import maskprop_d2  # noqa: F401  (registers the built-in splits)
from maskprop_d2.data import builtin
from maskprop_d2.data.ytvis import load_ytvis_json, register_ytvis_instances

from .ytvis_files import MASKS, POLYS, H, T, W, annotation, box, make_ytvis, video, write_json


@pytest.fixture
def unique_name():
    names = []

    def make(prefix="test_ytvis"):
        names.append(f"{prefix}_{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for n in names:
        if n in DatasetCatalog.list():
            DatasetCatalog.remove(n)
        if n in MetadataCatalog.list():
            MetadataCatalog.remove(n)


def test_round_trip(tmp_path, unique_name):
    data, root = make_ytvis(tmp_path)
    name = unique_name()
    recs = load_ytvis_json(write_json(tmp_path, data), root, name)

    assert [r["video_id"] for r in recs] == [5, 2]  # JSON order
    for r, v in zip(recs, data["videos"], strict=True):
        assert (r["height"], r["width"], r["length"]) == (H, W, T)
        assert r["file_names"] == [os.path.join(os.path.abspath(root), n) for n in v["file_names"]]
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in r["file_names"])
        assert len(r["annotations"]) == T

    # contiguous categories: dataset ids sorted (3, 7) -> (0, 1)
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["three", "seven"]
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1}
    assert len(meta.thing_colors) == 2

    v5, v2 = recs
    assert [[o["id"] for o in frame] for frame in v5["annotations"]] == [[10, 11], [10], [10, 11]]
    assert [[o["id"] for o in frame] for frame in v2["annotations"]] == [[20], [20], []]
    for rec in recs:
        for f, frame in enumerate(rec["annotations"]):
            for o in frame:
                assert set(o) == {"id", "category_id", "bbox", "bbox_mode", "segmentation",
                                  "iscrowd"}
                assert o["bbox_mode"] == BoxMode.XYWH_ABS
                assert o["category_id"] == {10: 0, 11: 1, 20: 1}[o["id"]]
                assert o["iscrowd"] == (1 if o["id"] == 11 else 0)
                seg = o["segmentation"]
                if o["id"] == 10:
                    assert isinstance(seg["counts"], str)
                    np.testing.assert_array_equal(mask_util.decode(seg), MASKS[10][f])
                    assert o["bbox"] == box(MASKS[10][f])
                elif o["id"] == 11:
                    assert isinstance(seg["counts"], list)
                    dec = mask_util.decode(mask_util.frPyObjects(seg, H, W))
                    np.testing.assert_array_equal(dec, MASKS[11][f])
                else:
                    assert seg == POLYS[f]
                    np.testing.assert_allclose(o["bbox"], [f, f, 8, 8])


def test_metadata_json_wins_colors_kept(tmp_path, unique_name):
    data, root = make_ytvis(tmp_path)
    name = unique_name()
    register_ytvis_instances(
        name, {"thing_classes": ["a", "b"], "thing_colors": [[1, 2, 3], [4, 5, 6]]},
        write_json(tmp_path, data), root,
    )
    recs = DatasetCatalog.get(name)
    assert len(recs) == 2
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["three", "seven"]
    assert meta.thing_colors == [[1, 2, 3], [4, 5, 6]]
    assert meta.evaluator_type == "ytvis"


def test_split_without_annotations(tmp_path):
    data, root = make_ytvis(tmp_path, with_annotations=False)
    recs = load_ytvis_json(write_json(tmp_path, data), root)
    assert len(recs) == 2
    assert all("annotations" not in r for r in recs)
    assert all(len(r["file_names"]) == T for r in recs)


def _dup_video(d):
    d["videos"].append(copy.deepcopy(video(d, 5)))


def _dup_anno(d):
    a = copy.deepcopy(annotation(d, 10))
    d["annotations"].append(a)


# (mutation, substrings the message must contain)
INVALID = {
    "no_videos": (lambda d: d.pop("videos"), ["videos"]),
    "no_categories": (lambda d: d.pop("categories"), ["categories"]),
    "video_missing_key": (lambda d: video(d, 5).pop("height"), ["video id 5", "height"]),
    "anno_missing_key": (lambda d: annotation(d, 11).pop("category_id"),
                         ["annotation id 11", "category_id"]),
    "segmentations_len": (lambda d: annotation(d, 11)["segmentations"].pop(),
                          ["annotation id 11", "video id 5", "segmentations", "2", "3"]),
    "areas_len": (lambda d: annotation(d, 20)["areas"].append(1.0),
                  ["annotation id 20", "video id 2", "areas"]),
    "bboxes_len": (lambda d: annotation(d, 10)["bboxes"].pop(0), ["annotation id 10", "bboxes"]),
    "unknown_category": (lambda d: annotation(d, 11).update(category_id=99),
                         ["annotation id 11", "category_id 99"]),
    "unknown_video": (lambda d: annotation(d, 20).update(video_id=77),
                      ["annotation id 20", "video_id 77"]),
    "duplicate_video": (_dup_video, ["video id 5", "duplicate"]),
    "duplicate_annotation": (_dup_anno, ["annotation id 10", "duplicate"]),
    "duplicate_category": (lambda d: d["categories"].append({"id": 3, "name": "z"}),
                           ["category id 3", "duplicate"]),
    "mask_size": (lambda d: annotation(d, 10)["segmentations"][1].update(size=[W, H]),
                  ["annotation id 10", "frame 1", "size", "32x24", "24x32"]),
    "uncompressed_sum": (lambda d: annotation(d, 11)["segmentations"][0]["counts"].append(5),
                         ["annotation id 11", "frame 0", "counts"]),
    "file_names_len": (lambda d: video(d, 2)["file_names"].pop(), ["video id 2", "file_names"]),
    "bbox_without_mask": (lambda d: annotation(d, 11)["bboxes"].__setitem__(1, [0, 0, 1, 1]),
                          ["annotation id 11", "frame 1", "bbox"]),
    "bad_polygon": (lambda d: annotation(d, 20)["segmentations"].__setitem__(0, [[1, 2, 3]]),
                    ["annotation id 20", "frame 0", "polygon"]),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_validation_errors(tmp_path, case):
    mutate, expected = INVALID[case]
    data, root = make_ytvis(tmp_path)
    mutate(data)
    json_file = write_json(tmp_path, data)
    with pytest.raises(ValueError) as e:
        load_ytvis_json(json_file, root)
    msg = str(e.value)
    assert json_file in msg
    for s in expected:
        assert s in msg, f"{s!r} not in {msg!r}"


def test_missing_json(tmp_path):
    _, root = make_ytvis(tmp_path)
    missing = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_ytvis_json(missing, root)


def test_missing_image_root(tmp_path):
    data, _ = make_ytvis(tmp_path)
    json_file = write_json(tmp_path, data)
    with pytest.raises(FileNotFoundError) as e:
        load_ytvis_json(json_file, str(tmp_path / "no_images"))
    assert "no_images" in str(e.value) and json_file in str(e.value)


def test_registration_is_lazy(tmp_path, unique_name):
    name = unique_name()
    missing = str(tmp_path / "does" / "not" / "exist.json")
    register_ytvis_instances(name, {"thing_classes": ["x"]}, missing, str(tmp_path / "nope"))
    meta = MetadataCatalog.get(name)
    assert meta.json_file == missing and meta.evaluator_type == "ytvis"
    with pytest.raises(FileNotFoundError, match="exist.json"):
        DatasetCatalog.get(name)


@pytest.mark.parametrize(
    "prefix,n,json_name",
    [("ytvis_2019", 40, "ytvis_2019/{}.json"), ("ytvis_2021", 40, "ytvis_2021/{}.json"),
     ("ovis", 25, "ovis/annotations_{}.json")],
)
def test_builtin_splits(prefix, n, json_name):
    for split, d in (("train", "train"), ("val", "valid"), ("test", "test")):
        name = f"{prefix}_{split}"
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.evaluator_type == "ytvis"
        assert len(meta.thing_classes) == n and len(set(meta.thing_classes)) == n
        assert meta.thing_dataset_id_to_contiguous_id == {i + 1: i for i in range(n)}
        assert len({tuple(c) for c in meta.thing_colors}) == n
        assert meta.json_file.replace(os.sep, "/").endswith(json_name.format(d))


def test_builtin_class_lists():
    assert builtin.YTVIS_2019_CATEGORIES[0]["name"] == "person"
    assert builtin.YTVIS_2019_CATEGORIES[39] == {
        "id": 40, "name": "tennis_racket", "color": builtin.YTVIS_2019_CATEGORIES[39]["color"]}
    assert builtin.YTVIS_2021_CATEGORIES[25]["name"] == "person"
    assert builtin.YTVIS_2021_CATEGORIES[-1]["name"] == "zebra"
    assert builtin.OVIS_CATEGORIES[-1] == {"id": 25, "name": "Vehicle",
                                           "color": builtin.OVIS_CATEGORIES[-1]["color"]}
    assert MetadataCatalog.get("ovis_val").image_root.replace(os.sep, "/").endswith("ovis/valid")


def test_reimport_is_safe():
    importlib.reload(builtin)  # re-runs the import-time registration
    assert "synthetic_ytvis_train" in DatasetCatalog.list()
    assert MetadataCatalog.get("synthetic_ytvis_val").evaluator_type == "ytvis"


def test_registration_is_guarded_like_detectron2():
    """Executing builtin.py under another module name registers nothing (detectron2's guard)."""
    import importlib.util

    before = set(DatasetCatalog.list())
    spec = importlib.util.spec_from_file_location("maskprop_d2.data.builtin_copy", builtin.__file__)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(DatasetCatalog.list()) == before
    assert callable(mod.register_all_ytvis)


def test_register_synthetic_other_root(tmp_path, unique_name):
    prefix = unique_name("hard")
    names = builtin.register_synthetic_ytvis(str(tmp_path / "hard"), prefix=prefix)
    try:
        assert names == [f"{prefix}_train", f"{prefix}_val"]
        assert MetadataCatalog.get(names[1]).json_file == str(tmp_path / "hard" / "valid.json")
        assert not (tmp_path / "hard").exists()  # lazy: nothing generated yet
        builtin.register_synthetic_ytvis(str(tmp_path / "hard"), prefix=prefix)  # same root: ok
        with pytest.raises(ValueError, match="already registered"):
            builtin.register_synthetic_ytvis(str(tmp_path / "other"), prefix=prefix)
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_synthetic_round_trip(tmp_path, unique_name):
    synthetic = pytest.importorskip("maskprop_d2.data.synthetic")
    root = str(tmp_path / "syn")
    gen = dict(num_train=2, num_val=1, length=5, height=32, width=48, seed=3)
    prefix = unique_name("syn")
    names = builtin.register_synthetic_ytvis(root, prefix=prefix)
    try:
        meta = MetadataCatalog.get(names[0])
        assert meta.thing_classes == [c["name"] for c in synthetic.SYNTHETIC_CATEGORIES]
        # never generated inside the loader: a clear error naming the commands that make it
        with pytest.raises(FileNotFoundError, match="make data.*maskprop_d2.data.synthetic"):
            DatasetCatalog.get(names[0])
        assert not os.path.exists(root)
        synthetic.generate_synthetic_dataset(root, **gen)
        for name, split, n_videos in ((names[0], "train", 2), (names[1], "valid", 1)):
            recs = DatasetCatalog.get(name)
            with open(os.path.join(root, f"{split}.json")) as f:
                data = json.load(f)
            assert len(recs) == len(data["videos"]) == n_videos
            id_map = meta.thing_dataset_id_to_contiguous_id
            n_objs = sum(len(fr) for r in recs for fr in r["annotations"])
            assert n_objs == sum(s is not None for a in data["annotations"]
                                 for s in a["segmentations"])
            for idx, rec in enumerate(recs):
                assert rec["length"] == 5 and (rec["height"], rec["width"]) == (32, 48)
                assert all(os.path.isfile(p) for p in rec["file_names"])
                annos = [a for a in data["annotations"] if a["video_id"] == rec["video_id"]]
                # what the generator drew: objects visible in >= 1 frame, in creation order
                drawn = synthetic.render_synthetic_video(
                    seed=3, split=split, index=idx, height=32, width=48, length=5)
                drawn = [o for o in drawn["objects"] if o["visible"].any()]
                assert len(drawn) == len(annos)
                for a, o in zip(annos, drawn, strict=True):
                    for f in range(5):
                        objs = [x for x in rec["annotations"][f] if x["id"] == a["id"]]
                        if not o["visible"][f].any():
                            assert objs == [] and a["segmentations"][f] is None
                            continue
                        (x,) = objs
                        assert x["category_id"] == id_map[a["category_id"]]
                        assert x["segmentation"] == a["segmentations"][f]
                        np.testing.assert_array_equal(
                            mask_util.decode(x["segmentation"]).astype(bool), o["visible"][f])
        assert builtin.register_synthetic_ytvis(root, prefix=prefix) == names  # no-op
        DatasetCatalog.get(names[0])  # loads again
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
