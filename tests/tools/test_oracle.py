"""GT masks through the clip-matching ID assignment must give back the GT."""

import json

import pytest

from maskprop_d2.evaluation import evaluate
from tests.helpers import load_script

oracle_results = load_script("oracle", "tools", "oracle.py").oracle_results


@pytest.fixture(scope="module")
def gt(synthetic_dataset):
    """The val GT of the shared synthetic dataset."""
    with open(synthetic_dataset / "valid.json") as f:
        return json.load(f)


def test_clips_spanning_the_video_recover_the_ground_truth(gt):
    assert max(v["length"] for v in gt["videos"]) <= 10
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
