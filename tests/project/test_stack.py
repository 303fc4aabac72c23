"""The environment the project is installed in: current numpy/Pillow, and trackeval usable."""

import numpy as np
import pytest


def test_trackeval_imports_and_scores_a_perfect_track():
    import trackeval  # a regular dependency (pyproject.toml)
    # One identity seen in two frames, tracked perfectly: HOTA and IDF1 are 1.
    data = {
        "num_timesteps": 2,
        "num_gt_ids": 1,
        "num_tracker_ids": 1,
        "num_gt_dets": 2,
        "num_tracker_dets": 2,
        "gt_ids": [np.array([0]), np.array([0])],
        "tracker_ids": [np.array([0]), np.array([0])],
        "similarity_scores": [np.array([[1.0]]), np.array([[1.0]])],
    }
    hota = trackeval.metrics.HOTA().eval_sequence(data)
    assert np.allclose(hota["HOTA"], 1.0)
    idf1 = trackeval.metrics.Identity().eval_sequence(data)
    assert idf1["IDF1"] == pytest.approx(1.0)
