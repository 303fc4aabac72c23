"""GT masks through the clip-matching ID assignment must give back the GT."""

import json
import os

import pytest

from maskprop_d2.data.synthetic import generate_synthetic_dataset
from maskprop_d2.evaluation import evaluate
from tests.helpers import load_script

oracle_results = load_script("oracle", "tools", "oracle.py").oracle_results


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    root = generate_synthetic_dataset(
        str(tmp_path_factory.mktemp("oracle") / "syn"),
        num_train=1,
        num_val=4,
        length=10,
        height=48,
        width=64,
        seed=5,
    )
    with open(os.path.join(root, "valid.json")) as f:
        return json.load(f)


def test_clips_spanning_the_video_recover_the_ground_truth(gt):
    # T >= length: every clip overlaps every other, so an occluded object keeps its ID
    results = oracle_results(gt, half_length=10)
    assert len(results) == len(gt["annotations"])
    stats = evaluate(gt, results).stats
    assert stats[0] == pytest.approx(1.0)  # AP
    assert stats[7] == pytest.approx(1.0)  # AR10


def test_single_frame_clips_never_link(gt):
    # T = 0: clips of one frame never overlap (|t - t'| < 2T + 1 only for t = t'): one ID per
    # (object, frame), so no video instance covers a whole track
    results = oracle_results(gt, half_length=0)
    present = sum(s is not None for a in gt["annotations"] for s in a["segmentations"])
    assert len(results) == present
    assert all(sum(s is not None for s in r["segmentations"]) == 1 for r in results)
