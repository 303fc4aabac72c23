"""tools/prop_head_accuracy.py: the centroid error and area ratio of its second table."""

import math

import torch

from tests.helpers import load_script

pha = load_script("prop_head_accuracy", "tools", "prop_head_accuracy.py")


def _square(y, x, side, hw=(32, 40)):
    m = torch.zeros(hw, dtype=torch.bool)
    m[y : y + side, x : x + side] = True
    return m


def test_centroid_error_and_area_ratio():
    gt = torch.stack([_square(4, 5, 6), _square(10, 10, 8), _square(2, 2, 4)])
    pred = torch.stack([_square(7, 9, 6), _square(9, 9, 10), torch.zeros(32, 40, dtype=torch.bool)])
    out = pha.centroid_and_area(pred, gt)
    assert out.shape == (3, 2)
    assert out[0, 0].item() == 5.0 and out[0, 1].item() == 1.0  # moved (3, 4): 5 px, same size
    assert out[1, 0].item() == 0.0  # same centre (both 13.5 / 13.5)...
    assert out[1, 1].item() == 100 / 64  # ...grown
    assert math.isnan(out[2, 0].item()) and out[2, 1].item() == 0.0  # empty prediction
