"""The GT file is checked as strictly as results, by scoring and by --check alike: each
defect is a clear error naming the field and the id, never a traceback; --check and scoring accept
the same results; the CLI imports neither torch nor detectron2."""

import copy
import json
import os
import re
import resource
import subprocess
import sys

import numpy as np
import pytest

from maskprop_d2.evaluation.__main__ import main as cli_main
from maskprop_d2.evaluation.results_io import check_gt, check_results, encode_mask
from maskprop_d2.evaluation.ytvis_eval import evaluate
from tests.helpers import REPO_ROOT

SQ = np.zeros((16, 16), dtype=np.uint8)
SQ[4:10, 4:10] = 1
SEGS = [encode_mask(SQ), encode_mask(SQ), None]


def good_gt():
    return {
        "videos": [
            {"id": 1, "height": 16, "width": 16, "length": 3},
            {"id": 2, "height": 16, "width": 16, "file_names": ["b/0.jpg", "b/1.jpg", "b/2.jpg"]},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": SEGS},
            {"id": 2, "video_id": 2, "category_id": 2, "iscrowd": 0, "segmentations": SEGS},
        ],
    }


def perfect():
    return [
        {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": SEGS},
        {"video_id": 2, "category_id": 2, "score": 0.8, "segmentations": SEGS},
    ]


def defect(fn):
    gt = copy.deepcopy(good_gt())
    fn(gt)
    return gt


# (name, GT edit, regex the message must match: field and id)
DEFECTS = [
    ("duplicate annotation", lambda g: g["annotations"].append(dict(g["annotations"][0])),
     r"annotations\[2\] \(id=1\): duplicate annotation id 1"),
    ("duplicate video id", lambda g: g["videos"][1].update(id=1),
     r"videos\[1\] \(id=1\): duplicate video id 1"),
    ("duplicate category id", lambda g: g["categories"][1].update(id=1),
     r"categories\[1\] \(id=1\): duplicate category id 1"),
    ("video without id", lambda g: g["videos"][0].pop("id"), r"videos\[0\]: missing 'id'"),
    ("video without height", lambda g: g["videos"][0].pop("height"),
     r"videos\[0\] \(id=1\): missing 'height'"),
    ("mistyped width", lambda g: g["videos"][0].update(width="16"),
     r"videos\[0\] \(id=1\): 'width' must be an integer in 1\.\.\d+, got '16'"),
    ("mistyped length", lambda g: g["videos"][0].update(length=3.0),
     r"videos\[0\] \(id=1\): 'length' must be an integer"),
    ("length disagrees with file_names", lambda g: g["videos"][1].update(length=2),
     r"videos\[1\] \(id=2\): 'length' 2 != 3 'file_names'"),
    ("no length nor file_names", lambda g: g["videos"][0].pop("length"),
     r"videos\[0\] \(id=1\): missing 'length' \(and no 'file_names'\)"),
    ("mistyped file_names", lambda g: g["videos"][1].update(file_names="b/0.jpg"),
     r"videos\[1\] \(id=2\): 'file_names' must be a list of strings"),
    ("non-object video", lambda g: g["videos"].append(7), r"videos\[2\]: must be an object"),
    ("non-object category", lambda g: g["categories"].append("cat"),
     r"categories\[2\]: must be an object"),
    ("non-object annotation", lambda g: g["annotations"].append([1, 2]),
     r"annotations\[2\]: must be an object, got list"),
    ("annotation without id", lambda g: g["annotations"][1].pop("id"),
     r"annotations\[1\]: missing 'id'"),
    ("mistyped annotation id", lambda g: g["annotations"][1].update(id="2"),
     r"annotations\[1\]: 'id' must be an integer, got '2'"),
    ("mistyped category id", lambda g: g["categories"][0].update(id=True),
     r"categories\[0\]: 'id' must be an integer, got True"),
    ("unknown video_id", lambda g: g["annotations"][1].update(video_id=9),
     r"annotations\[1\] \(id=2\): unknown video_id 9"),
    ("bad iscrowd", lambda g: g["annotations"][1].update(iscrowd=2),
     r"annotations\[1\] \(id=2\): 'iscrowd' must be 0 or 1"),
    ("segmentations not a list", lambda g: g["annotations"][1].update(segmentations={}),
     r"annotations\[1\] \(id=2\): 'segmentations' must be a list"),
    ("annotation size disagrees", lambda g: g["annotations"][1].update(height=8),
     r"annotations\[1\] \(id=2\): 'height' 8 != the video's 16"),
    ("videos not a list", lambda g: g.update(videos={}), r"'videos' must be a list"),
    ("wrong RLE size", lambda g: g["annotations"][0]["segmentations"].__setitem__(
        2, {"size": [8, 16], "counts": "0" * 3}),
     r"annotations\[0\] \(id=1, video_id=1\) frame 2: mask size 8x16 != video size 16x16"),
]  # fmt: skip


@pytest.mark.parametrize("name,edit,pattern", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_gt_defect_is_a_clear_error_in_scoring_and_check(tmp_path, capsys, name, edit, pattern):
    gt = defect(edit)
    with pytest.raises(ValueError, match=r"invalid ground truth: .*" + pattern):
        evaluate(gt, perfect())
    errs = check_results(gt, perfect())
    assert errs and any(re.search(pattern, e) for e in errs), errs
    assert all(e.startswith("ground truth: ") for e in errs)
    assert check_gt(gt) == errs
    # the CLI, both modes: exit status 1, the message on stderr, no traceback
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(perfect()))
    for argv in ([], ["--check"]):
        rc = cli_main(argv + [str(tmp_path / "gt.json"), str(tmp_path / "res.json")])
        err = capsys.readouterr().err
        assert rc == 1
        assert re.search(pattern, err), err
        assert "Traceback" not in err


def test_duplicated_annotation_no_longer_scored_silently():
    # before the GT checks: a perfect prediction got AP 0.938 against a GT with a duplicate
    gt = good_gt()
    assert evaluate(gt, perfect()).stats[0] == 1.0
    with pytest.raises(ValueError, match="duplicate annotation id"):
        evaluate(defect(lambda g: g["annotations"].append(dict(g["annotations"][0]))), perfect())


def test_a_duplicate_video_is_one_message_not_many_mask_errors():
    errs = check_results(defect(lambda g: g["videos"][1].update(id=1)), perfect())
    assert "duplicate video id 1" in errs[0]
    assert errs[1:] == ["ground truth: annotations[1] (id=2): unknown video_id 2"]


def test_check_and_scoring_accept_the_same_results():
    gt = good_gt()
    unc = {"size": [16, 16], "counts": [int(x) for x in np.diff(np.r_[0, 68, 74, 84, 90, 100,
                                                                   106, 116, 122, 132, 138, 148,
                                                                   154, 256])]}  # fmt: skip
    assert sum(unc["counts"]) == 256
    cases = [
        perfect(),
        [dict(perfect()[0], segmentations=[unc, unc, None])],  # uncompressed RLE
        [dict(perfect()[0], segmentations=[{"size": [16, 16], "counts":
                                            SEGS[0]["counts"].encode()}, None, None])],  # bytes
        [dict(perfect()[0], segmentations=[[[0, 0, 5, 0, 5, 5]], None, None])],  # polygon
        [dict(perfect()[0], score=True)],
        [dict(perfect()[0], segmentations=[{"size": [16, 16], "counts": [255]}, None, None])],
        [dict(perfect()[0], segmentations=[{"size": [16, 16], "counts": [1.5, 254.5]}, None,
                                           None])],  # fmt: skip
        [dict(perfect()[0], segmentations=[{"size": [16, 16], "counts": "0!"}, None, None])],
    ]
    for results in cases:
        errs = check_results(gt, results)
        try:
            evaluate(gt, results)
            scored = True
        except ValueError as e:
            scored = False
            assert errs and errs[0] in str(e)
        assert scored == (errs == []), (results, errs)


def test_gt_without_annotations_is_fine_for_check():
    gt = good_gt()
    del gt["annotations"]
    assert check_results(gt, perfect()) == []
    with pytest.raises(ValueError, match="no 'annotations'"):
        evaluate(gt, perfect())


def test_cli_help_imports_neither_torch_nor_detectron2():
    cmd = [sys.executable, "-X", "importtime", "-m", "maskprop_d2.evaluation", "--help"]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # one BLAS/OpenMP thread: numpy's thread pool would otherwise add every core's start-up spin
    # to the CPU time (1.3-2.2 s on a 16-core machine for a 0.4 s wall-time import)
    env.update({v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    best = float("inf")
    for _ in range(3):  # CPU seconds of the child (the machine may be shared: not wall time)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, cpu)
        assert proc.returncode == 0, proc.stderr
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]  # fmt: skip
    assert "maskprop_d2.evaluation.ytvis_eval" in imported  # the table is real
    heavy = [m for m in imported if m.split(".")[0] in ("torch", "detectron2", "trackeval")]
    assert heavy == []
    assert best < 1.0, best


def test_evaluator_module_is_lazy_and_still_importable():
    code = (
        "import sys, maskprop_d2.evaluation as e; "
        "assert 'maskprop_d2.evaluation.evaluator' not in sys.modules; "
        "assert 'trackeval' not in sys.modules; "
        "from maskprop_d2.evaluation import YTVISEvaluator; "
        "print(YTVISEvaluator.__module__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["maskprop_d2.evaluation.evaluator"]
