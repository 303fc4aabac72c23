"""Training data is refused before iteration 0: RLE counts, polygons, frame files,
malformed JSON and field types, with errors naming the file, video / annotation id, frame, field."""
import logging
import os
import uuid

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from maskprop_d2 import get_maskprop_cfg
from maskprop_d2.data import build_clip_train_loader, get_video_dataset_dicts
from maskprop_d2.data.validation import DatasetValidationError
from maskprop_d2.data.ytvis import load_ytvis_json, register_ytvis_instances

from .ytvis_files import annotation, make_ytvis, video, write_json


@pytest.fixture
def registered(tmp_path):
    names = []

    def register(data, root):
        name = f"test_validation_{uuid.uuid4().hex[:8]}"
        names.append(name)
        register_ytvis_instances(name, {}, write_json(tmp_path, data), root)
        return name

    yield register
    for n in names:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


def _load_error(tmp_path, data, root) -> str:
    json_file = write_json(tmp_path, data)
    with pytest.raises(ValueError) as e:
        load_ytvis_json(json_file, root)
    msg = str(e.value)
    assert json_file in msg
    return msg


# ---------------------------------------------------------------- compressed RLE counts
def test_compressed_counts_short_of_h_times_w(tmp_path):
    # a valid RLE string of a 10x10 mask given for a 24x32 video: pycocotools decodes it to
    # garbage (a different mask each run); the loader must refuse it
    data, root = make_ytvis(tmp_path)
    annotation(data, 10)["segmentations"][1]["counts"] = "0`1"  # 48 pixels, not 24*32
    msg = _load_error(tmp_path, data, root)
    for s in ("annotation id 10", "video id 5", "frame 1", "'segmentations'", "24x32"):
        assert s in msg, msg


@pytest.mark.parametrize("counts", ["this is not RLE!", "\u00e9\u00e9", "0", "PPPP"])
def test_counts_that_are_not_rle(tmp_path, counts):
    data, root = make_ytvis(tmp_path)
    annotation(data, 10)["segmentations"][2]["counts"] = counts
    msg = _load_error(tmp_path, data, root)
    assert "annotation id 10" in msg and "frame 2" in msg and "RLE" in msg, msg


def test_valid_compressed_rle_still_loads(tmp_path):
    data, root = make_ytvis(tmp_path)
    recs = load_ytvis_json(write_json(tmp_path, data), root)
    assert len(recs) == 2


# ---------------------------------------------------------------- malformed JSON, field types
def test_truncated_json_names_file_and_position(tmp_path):
    data, root = make_ytvis(tmp_path)
    p = tmp_path / "ann.json"
    text = write_json(tmp_path, data) and p.read_text()
    p.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError) as e:
        load_ytvis_json(str(p), root)
    msg = str(e.value)
    assert str(p) in msg and "line 1 column" in msg and "malformed JSON" in msg, msg


def test_non_utf8_json_names_file_and_byte(tmp_path):
    data, root = make_ytvis(tmp_path)
    video(data, 5)["file_names"][0] = "vid_a/XX.jpg"
    p = tmp_path / "ann.json"
    raw = write_json(tmp_path, data) and p.read_bytes()
    pos = raw.index(b"XX")
    p.write_bytes(raw[:pos] + b"\xff\xfe" + raw[pos + 2:])
    with pytest.raises(ValueError) as e:
        load_ytvis_json(str(p), root)
    msg = str(e.value)
    assert str(p) in msg and "UTF-8" in msg and f"byte {pos}" in msg, msg


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: annotation(d, 10)["segmentations"][0].update(size="96x128"),
         ["annotation id 10", "frame 0", "'size'", "96x128"]),
        (lambda d: annotation(d, 10)["segmentations"][0].update(size=None),
         ["annotation id 10", "frame 0", "'size'", "None"]),
        (lambda d: video(d, 5).update(height="abc"), ["video id 5", "'height'", "abc"]),
        (lambda d: video(d, 2).update(width=None), ["video id 2", "'width'", "None"]),
        (lambda d: video(d, 2).update(length=-1), ["video id 2", "'length'", "-1"]),
        (lambda d: annotation(d, 10)["segmentations"][0].update(counts=None),
         ["annotation id 10", "frame 0", "counts"]),
        (lambda d: annotation(d, 11)["segmentations"][0].update(counts=["a", 3]),
         ["annotation id 11", "frame 0", "counts"]),
        (lambda d: annotation(d, 20)["segmentations"][0][0].__setitem__(2, "x"),
         ["annotation id 20", "frame 0", "polygon"]),
        (lambda d: annotation(d, 20)["segmentations"][0][0].__setitem__(2, float("nan")),
         ["annotation id 20", "frame 0", "polygon"]),
        (lambda d: annotation(d, 10)["bboxes"].__setitem__(0, ["a", 1, 2, 3]),
         ["annotation id 10", "frame 0", "bboxes"]),
        (lambda d: d.update(videos={"a": 1}), ["'videos' must be a list"]),
        (lambda d: annotation(d, 10).update(video_id=[5]), ["annotation id 10", "video_id"]),
    ],
)
def test_bad_field_types_are_clear_errors(tmp_path, mutate, expected):
    data, root = make_ytvis(tmp_path)
    mutate(data)
    msg = _load_error(tmp_path, data, root)
    for s in expected:
        assert s in msg, f"{s!r} not in {msg!r}"


def test_first_ten_problems_listed_and_the_rest_counted(tmp_path):
    data, root = make_ytvis(tmp_path)
    for aid in (10, 11):
        for seg in annotation(data, aid)["segmentations"]:
            if seg is not None:
                seg["size"] = [1, 1]
    for v in data["videos"]:
        v["height"] = "h"
    # 2 video problems (their annotations are then not checked): fix one video
    video(data, 5)["height"] = 24
    json_file = write_json(tmp_path, data)
    with pytest.raises(DatasetValidationError) as e:
        load_ytvis_json(json_file, root)
    assert len(e.value.problems) == 6  # video 2 + 5 frames of annotations 10, 11
    data, root = make_ytvis(tmp_path / "many")
    data["annotations"] *= 1
    for k in range(12):  # 12 unknown-video annotations + 1 bad frame
        data["annotations"].append(dict(annotation(data, 10), id=1000 + k, video_id=99))
    annotation(data, 10)["segmentations"][0]["counts"] = "x"
    json_file = write_json(tmp_path / "many", data)
    with pytest.raises(DatasetValidationError) as e:
        load_ytvis_json(json_file, root)
    msg = str(e.value)
    assert "13 problem(s)" in msg and "... and 3 more problem(s)" in msg, msg
    assert msg.count("\n  - ") == 10


# ---------------------------------------------------------------- frame files, drop option
def test_missing_frame_file_stops_before_training(tmp_path, registered):
    data, root = make_ytvis(tmp_path)
    os.remove(os.path.join(root, "vid_b", "00005.jpg"))
    name = registered(data, root)
    cfg = get_maskprop_cfg()
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATASETS.TRAIN = (name,)
    with pytest.raises(DatasetValidationError) as e:
        build_clip_train_loader(cfg)
    msg = str(e.value)
    for s in (name, "ann.json", "video id 2", "frame 1", "file_names", "vid_b/00005.jpg"):
        assert s in msg, msg
    # the test loader does not need every frame up front: unchanged
    assert len(get_video_dataset_dicts([name], filter_empty=False)) == 2


def test_drop_invalid_is_explicit_and_logged(tmp_path, registered, caplog):
    data, root = make_ytvis(tmp_path)
    annotation(data, 20)["segmentations"][0] = {"size": [24, 32], "counts": "0`1"}  # video 2
    os.remove(os.path.join(root, "vid_a", "00010.jpg"))  # video 5
    name = registered(data, root)
    cfg = get_maskprop_cfg()
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATASETS.TRAIN = (name,)
    with pytest.raises(DatasetValidationError, match="annotation id 20"):
        build_clip_train_loader(cfg)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(ValueError, match="empty"):
            get_video_dataset_dicts([name], check_files=True, drop_invalid=True)
    assert "annotation id 20" in caplog.text and "vid_a/00010.jpg" in caplog.text
    assert "DROP_INVALID" in caplog.text

    data, root = make_ytvis(tmp_path / "b")
    annotation(data, 20)["segmentations"][0] = {"size": [24, 32], "counts": "0`1"}  # video 2
    name = registered(data, root)
    cfg.DATASETS.TRAIN = (name,)
    cfg.DATASETS.DROP_INVALID = True
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        recs = get_video_dataset_dicts([name], check_files=True, drop_invalid=True)
        build_clip_train_loader(cfg)
    assert [r["video_id"] for r in recs] == [5]
    assert "dropped 1 video(s)" in caplog.text


# ---------------------------------------------------------------- one set of rules
# (edit, the problem text both the loader and the evaluator give; their field rules are
# maskprop_d2.utils.ytvis_fields')
SAME_RULES = [
    (lambda d: video(d, 5).update(width="32"), "'width' must be an integer in 1..16384, got '32'"),
    (lambda d: video(d, 2).update(length=2**21),
     "'length' must be an integer in 1..1048576, got 2097152"),
    (lambda d: video(d, 2).update(length=2), "'length' 2 != 3 'file_names'"),
    (lambda d: annotation(d, 11).update(iscrowd=2), "'iscrowd' must be 0 or 1, got 2"),
    (lambda d: annotation(d, 11).update(id="11"), "'id' must be an integer, got '11'"),
    (lambda d: annotation(d, 11).update(category_id=99), "unknown category_id 99"),
    (lambda d: annotation(d, 11)["segmentations"].pop(), "2 segmentations for a video of 3 frames"),
    (lambda d: annotation(d, 10)["segmentations"][1].update(size=[32, 24]),
     "mask size 32x24 != video size 24x32"),
    (lambda d: annotation(d, 20)["segmentations"].__setitem__(0, [[1, 2, 3]]),
     "malformed polygon (lists of >= 3 x, y pairs expected)"),
    (lambda d: annotation(d, 11)["segmentations"][0]["counts"].append(5),
     "RLE counts sum to 773 != 24x32"),
    (lambda d: annotation(d, 10)["segmentations"][1].update(counts="0`1"),
     "RLE covers 48 pixels != 24x32"),
]


@pytest.mark.parametrize("edit,problem", SAME_RULES)
def test_the_loader_and_the_evaluator_apply_the_same_rules(tmp_path, edit, problem):
    from maskprop_d2.evaluation.results_io import check_gt

    data, root = make_ytvis(tmp_path)
    assert check_gt(data) == []
    edit(data)
    assert problem in _load_error(tmp_path, data, root)
    assert any(problem in p for p in check_gt(data)), check_gt(data)
