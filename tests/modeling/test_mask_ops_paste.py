"""add_soft_masks_in_boxes: the same sums as pasting every mask on the whole canvas."""

import torch

from maskprop_d2.modeling.mask_ops import add_soft_masks_in_boxes, paste_soft_masks


def test_box_limited_paste_equals_the_full_canvas_paste():
    g = torch.Generator().manual_seed(0)
    for i in range(12):
        n, h, w, u = 7, 37, 53, 3
        m = 24 if i < 6 else 4  # boxes of 0.5-30 px: cells of 0.02-1.3 px, then 0.1-8 px
        masks = torch.rand(n, m, m, generator=g)
        x0, y0 = torch.rand(n, generator=g) * 60 - 8, torch.rand(n, generator=g) * 40 - 6
        boxes = torch.stack([x0, y0, x0 + torch.rand(n, generator=g) * 30 + 0.5,
                             y0 + torch.rand(n, generator=g) * 25 + 0.5], 1)  # fmt: skip
        idx, wts = torch.randint(0, u, (n,), generator=g), torch.rand(n, generator=g)
        ref = torch.zeros(u, h, w)
        ref.index_add_(0, idx, paste_soft_masks(masks, boxes, (h, w)) * wts[:, None, None])
        out = torch.zeros(u, h, w)
        add_soft_masks_in_boxes(out, idx, masks, boxes, wts)
        assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
    out = torch.zeros(1, 5, 5)
    add_soft_masks_in_boxes(out, torch.zeros(0, dtype=torch.long), torch.zeros(0, 4, 4),
                            torch.zeros(0, 4), torch.zeros(0))  # fmt: skip
    assert not out.any()
