"""Evaluator CLI and demo arguments: out-of-range numbers and over-deep JSON give one-line
errors naming the field, ``--json`` leaves no folder behind, ``--identity`` refuses past its
memory limit before allocating, demo thresholds / fps are argument errors naming the option."""
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest

from maskprop_d2.evaluation.__main__ import main as eval_main
from maskprop_d2.evaluation.identity import estimate_identity_bytes
from tests.helpers import load_script

BIG = 10**400


def _rle():
    m = np.zeros((8, 8), np.uint8, order="F")
    m[2:5, 2:5] = 1
    r = mask_util.encode(np.asfortranarray(m))
    return {"size": [8, 8], "counts": r["counts"].decode()}


def _files(tmp_path, gt_edit=None, res_edit=None):
    gt = {"videos": [{"id": 1, "width": 8, "height": 8, "length": 2,
                      "file_names": ["a/0.jpg", "a/1.jpg"]}],
          "categories": [{"id": 1, "name": "x"}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                           "segmentations": [_rle(), _rle()], "areas": [9, 9],
                           "bboxes": [[2, 2, 3, 3], [2, 2, 3, 3]]}]}
    res = [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [_rle(), _rle()]}]
    if gt_edit:
        gt_edit(gt)
    if res_edit:
        res_edit(res)
    g, r = tmp_path / "gt.json", tmp_path / "res.json"
    g.write_text(json.dumps(gt))
    r.write_text(json.dumps(res))
    return str(g), str(r)


@pytest.mark.parametrize("gt_edit, res_edit, field", [
    (None, lambda r: r[0].update(score=BIG), "score"),
    (None, lambda r: r[0].update(score=-BIG), "score"),
    (lambda g: g["annotations"][0].update(areas=[BIG, 9]), None, "'areas'"),
    (lambda g: g["videos"][0].update(height=BIG), None, "'height'"),
    (None, lambda r: r[0].update(video_id=BIG), "unknown video_id"),
    (None, lambda r: r[0]["segmentations"][0].update(size=[BIG, 8]), "mask size"),
])
def test_huge_numbers_are_one_line_errors_naming_the_field(tmp_path, capsys, gt_edit, res_edit,
                                                           field):
    g, r = _files(tmp_path, gt_edit, res_edit)
    for check in ([], ["--check"]):
        assert eval_main([g, r] + check) == 1
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert lines and field in err and "Traceback" not in err, err
        assert all(len(ln) < 400 for ln in lines), err  # the number is not quoted in full


@pytest.mark.parametrize("which", ["gt", "res"])
def test_over_deep_json_is_a_one_line_error(tmp_path, capsys, which):
    g, r = _files(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200000 + "]" * 200000)
    args = [str(deep), r] if which == "gt" else [g, str(deep)]
    assert eval_main(args) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"error: {deep} is not valid JSON: nested too deeply", err


def test_json_output_leaves_no_folder_when_scoring_fails(tmp_path, capsys):
    g, r = _files(tmp_path, res_edit=lambda r: r[0].update(score="high"))
    out = tmp_path / "a" / "b" / "stats.json"
    assert eval_main([g, r, "--json", str(out)]) == 1
    assert not (tmp_path / "a").exists()
    g, r = _files(tmp_path)
    assert eval_main([g, r, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] == 1.0
    assert sorted(os.listdir(out.parent)) == ["stats.json"]


def test_identity_refuses_past_its_memory_limit_before_running(tmp_path, capsys, monkeypatch):
    import maskprop_d2.evaluation.identity as identity

    def never(*a, **k):
        raise AssertionError("TrackEval must not run")

    monkeypatch.setattr(identity, "trackeval_youtube_vis", never)
    g, r = _files(tmp_path, res_edit=lambda r: r.extend([dict(r[0]) for _ in range(2000)]))
    assert eval_main([g, r, "--identity", "--identity-max-gb", "0.01"]) == 1
    err = capsys.readouterr().err
    assert "identity metrics refused" in err and "limit 0.01 GiB" in err, err
    assert "--identity-max-gb" in err
    assert len(err.strip().splitlines()) == 1
    # the estimate grows with the (video, category) track count squared
    gt, res = json.loads(open(g).read()), json.loads(open(r).read())
    assert estimate_identity_bytes(gt, res * 4) > 4 * estimate_identity_bytes(gt, res) - 2**30


@pytest.mark.parametrize("args, option", [
    (["--confidence-threshold", "nan"], "--confidence-threshold"),
    (["--confidence-threshold", "1.5"], "--confidence-threshold"),
    (["--confidence-threshold", "-0.1"], "--confidence-threshold"),
    (["--confidence-threshold", "inf"], "--confidence-threshold"),
    (["--fps", "0"], "--fps"),
    (["--fps", "-3"], "--fps"),
    (["--fps", "nan"], "--fps"),
    (["--fps", "abc"], "--fps"),
])
def test_demo_numeric_options_are_argument_errors(tmp_path, capsys, args, option):
    demo = load_script("maskprop_demo", "demo", "demo.py")
    with pytest.raises(SystemExit) as e:
        demo.get_parser().parse_args(["--config-file", "c.yaml", "--input", "x", "--output",
                                      str(tmp_path / "o.mp4")] + args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and option in err.splitlines()[-1], err
    assert os.listdir(tmp_path) == []
