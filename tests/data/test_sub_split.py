"""The local train_sub / val_sub split: deterministic, disjoint, covering, registered."""
import json
import subprocess
import sys

from detectron2.data import MetadataCatalog

from maskprop_d2.data.sub_split import in_val_sub, split_ytvis_json, write_sub_splits
from tests.helpers import REPO_ROOT


def _data(n=400):
    videos = [{"id": i + 1, "file_names": [f"{i:010x}/00000.jpg", f"{i:010x}/00005.jpg"]}
              for i in range(n)]  # fmt: skip
    anns = [{"id": i + 1, "video_id": i // 2 + 1} for i in range(2 * n)]
    return {"info": {"x": 1}, "categories": [{"id": 1, "name": "a"}], "videos": videos,
            "annotations": anns}  # fmt: skip


def test_split_is_disjoint_covering_and_by_video():
    data = _data()
    train, val = split_ytvis_json(data)
    t_ids, v_ids = {v["id"] for v in train["videos"]}, {v["id"] for v in val["videos"]}
    assert not t_ids & v_ids and t_ids | v_ids == {v["id"] for v in data["videos"]}
    assert 20 <= len(v_ids) <= 60  # ~10 % of 400
    assert {a["video_id"] for a in val["annotations"]} == v_ids
    assert len(train["annotations"]) + len(val["annotations"]) == len(data["annotations"])
    assert train["categories"] == val["categories"] == data["categories"]


def test_split_is_deterministic_and_order_free():
    data = _data()
    _, val = split_ytvis_json(data)
    shuffled = dict(data, videos=data["videos"][::-1])
    _, val2 = split_ytvis_json(shuffled)
    assert {v["id"] for v in val["videos"]} == {v["id"] for v in val2["videos"]}
    # a fixed hash (sha1), not Python's salted hash(): the same in another interpreter
    code = ("from maskprop_d2.data.sub_split import in_val_sub;"
            "print([k for k in map('{:010x}'.format, range(400)) if in_val_sub(k)])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO_ROOT, env={"PYTHONHASHSEED": "123"}, check=True)  # fmt: skip
    assert out.stdout.split("\n")[-2] == str(
        [k for k in map("{:010x}".format, range(400)) if in_val_sub(k)]
    )


def test_write_sub_splits_and_registered_names(tmp_path):
    src = tmp_path / "train.json"
    src.write_text(json.dumps(_data(50)))
    train_p, val_p = write_sub_splits(str(src))
    t, v = json.loads(open(train_p).read()), json.loads(open(val_p).read())
    assert len(t["videos"]) + len(v["videos"]) == 50
    for ds in ("ytvis_2019", "ytvis_2021", "ovis"):
        meta = MetadataCatalog.get(f"{ds}_val_sub")
        assert meta.json_file.endswith("val_sub.json")
        assert meta.image_root == MetadataCatalog.get(f"{ds}_train").image_root
