"""Fuzz suite for the parsers the project owns, with hypothesis.

Random mutations of a valid file (removed keys / elements, wrong types, wrong lengths, huge
numbers, bad RLE bytes, truncated strings and files) must give either a valid result or the
project's own clear error (``ValueError`` naming the file or the entry), never a raw traceback
(``TypeError``, ``KeyError``, ...) and never garbage: a training GT that loads has only RLEs that
an independent decoder accepts; a score is the same on every run.

Bounded for CI (``MASKPROP_FUZZ_EXAMPLES``, default 40 examples per parser, < 60 s in all);
a longer run by hand: ``MASKPROP_FUZZ_EXAMPLES=2000 pytest tests/project/test_fuzz_parsers.py``.
"""
import copy
import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskprop_d2.data.ytvis import load_ytvis_json
from maskprop_d2.evaluation.results_io import check_results, load_results
from maskprop_d2.evaluation.ytvis_eval import evaluate
from maskprop_d2.utils.rle import decode_segmentation
from tests.data.ytvis_files import make_ytvis

EXAMPLES = int(os.environ.get("MASKPROP_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 100,  # CI: the same examples on every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

WEIRD = st.one_of(
    st.sampled_from(
        [None, "", "abc", "96x128", "0`1", "\u00e9", -1, 0, 1, 2**31, 2**64, 10**30, 1e308,
         -1e308, math.inf, math.nan, 0.5, True, False, [], {}, [1, 2], [[]], {"size": None},
         {"size": [24, 32], "counts": "0"}, {"size": [24, 32], "counts": [0, 1]}]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=6),
)


def _paths(node, out):
    """(container, key) of every element of a JSON document."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in list(items):
        out.append((node, k))
        if isinstance(v, (dict, list)):
            _paths(v, out)
    return out


@st.composite
def mutations(draw, base):
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc, [])
        if not paths:
            break
        parent, key = paths[draw(st.integers(0, len(paths) - 1))]
        val = parent[key]
        op = draw(st.sampled_from(["delete", "replace", "append", "string", "number"]))
        if op == "delete":
            del parent[key]
        elif op == "append" and isinstance(val, list):
            val.append(copy.deepcopy(val[-1] if val and draw(st.booleans()) else draw(WEIRD)))
        elif op == "string" and isinstance(val, str) and val:
            i = draw(st.integers(0, len(val) - 1))
            if draw(st.booleans()):
                parent[key] = val[:i]  # truncated (e.g. RLE counts)
            else:  # one character replaced by an arbitrary one (bad RLE bytes)
                parent[key] = val[:i] + draw(st.characters()) + val[i + 1:]
        elif op == "number" and isinstance(val, (int, float)) and not isinstance(val, bool):
            parent[key] = val + draw(st.sampled_from([-1, 1, 2**40, -(2**40)]))
        else:
            parent[key] = copy.deepcopy(draw(WEIRD))  # (WEIRD's lists are shared constants)
    return doc


def _rle_total(counts: str):
    """Independent, slow decoder of COCO compressed counts: the total, or None if malformed."""
    runs, p = [], 0
    while p < len(counts):
        x = k = 0
        more = True
        while more:
            if p >= len(counts):
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c <= 63:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return None
        runs.append(x)
    return sum(runs)


# ---------------------------------------------------------------- training GT loader
@pytest.fixture(scope="module")
def train_gt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_train")
    data, root = make_ytvis(folder)
    return data, root, str(folder / "fuzzed.json")


def _check_loaded(records):
    for rec in records:
        h, w = rec["height"], rec["width"]
        for objs in rec.get("annotations", []):  # (none when the key was removed)
            for obj in objs:
                seg = obj["segmentation"]
                if isinstance(seg, dict) and isinstance(seg["counts"], str):
                    assert _rle_total(seg["counts"]) == h * w, seg
                m = decode_segmentation(seg, h, w)
                assert m.shape == (h, w) and set(np.unique(m).tolist()) <= {0, 1}
                assert all(math.isfinite(x) for x in obj["bbox"])


def _load(path, root):
    try:
        return load_ytvis_json(path, root)
    except FileNotFoundError:
        raise
    except ValueError as e:
        assert path in str(e), str(e)  # names the file
        return None


@FUZZ
@given(data=st.data())
def test_fuzz_training_gt_loader(train_gt, data):
    base, root, path = train_gt
    doc = data.draw(mutations(base))
    text = json.dumps(doc)
    if data.draw(st.integers(0, 9)) == 0:  # sometimes a truncated file
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    with open(path, "w") as f:
        f.write(text)
    records = _load(path, root)
    if records is not None:
        _check_loaded(records)


# ---------------------------------------------------------------- evaluator (GT and results)
H, W = 24, 32


def _rle(x0, y0, x1, y1):
    import pycocotools.mask as mask_util

    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    r = mask_util.encode(np.asfortranarray(m))
    return {"size": [H, W], "counts": r["counts"].decode("ascii")}


EVAL_GT = {
    "videos": [{"id": 1, "width": W, "height": H, "length": 2, "file_names": ["a", "b"]},
               {"id": 2, "width": W, "height": H, "length": 1, "file_names": ["c"]}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [
        {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
         "segmentations": [_rle(2, 2, 10, 10), _rle(3, 2, 11, 10)], "areas": [64, 64],
         "bboxes": [[2, 2, 8, 8], [3, 2, 8, 8]]},
        {"id": 2, "video_id": 2, "category_id": 2, "iscrowd": 0,
         "segmentations": [{"size": [H, W], "counts": [100, 50, 618]}], "areas": [50],
         "bboxes": None},
    ],
}
EVAL_RESULTS = [
    {"video_id": 1, "category_id": 1, "score": 0.9,
     "segmentations": [_rle(2, 2, 10, 10), _rle(4, 2, 12, 10)]},
    {"video_id": 2, "category_id": 2, "score": 0.5, "segmentations": [_rle(4, 4, 9, 14)]},
    {"video_id": 1, "category_id": 2, "score": 0.3, "segmentations": [None, _rle(0, 0, 5, 5)]},
]


def _score(gt, results):
    try:
        a = evaluate(gt, results)
    except ValueError:
        return None
    b = evaluate(copy.deepcopy(gt), copy.deepcopy(results))
    assert np.array_equal(a.stats, b.stats, equal_nan=True)  # no garbage decoding
    return a.stats


def test_valid_evaluation_files_score():
    assert _score(EVAL_GT, EVAL_RESULTS) is not None


@FUZZ
@given(data=st.data())
def test_fuzz_evaluator_gt(data):
    _score(data.draw(mutations(EVAL_GT)), EVAL_RESULTS)


@FUZZ
@given(data=st.data())
def test_fuzz_results_loader_and_validator(data, tmp_path):
    results = data.draw(mutations({"r": EVAL_RESULTS}))
    results = results.get("r", results)
    path = tmp_path / "results.json"
    text = json.dumps(results)
    if data.draw(st.integers(0, 9)) == 0:
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    path.write_text(text)
    try:
        loaded = load_results(str(path))
    except ValueError as e:
        assert str(path) in str(e)
        return
    problems = check_results(EVAL_GT, loaded)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    stats = _score(EVAL_GT, loaded)
    if not problems:
        assert stats is not None
