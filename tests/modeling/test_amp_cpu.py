"""Mixed precision on CPU: one MaskProp training step under torch.autocast("cpu", bfloat16).

The CUDA AMP runs (float16 and bfloat16) are in tools/gpu_check.py; this keeps the autocast code
path (deformable conv, ROIAlign, soft IoU loss, detectron2's heads) exercised in CI.
"""

import torch
from detectron2.utils.events import EventStorage

from tests.helpers import make_clip


def test_one_bfloat16_autocast_training_step_on_cpu(tiny_model_copy):
    _, model = tiny_model_copy  # random init, torch seed 0
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    clips = [make_clip(), make_clip(n_frames=2, center=0, absent=(1, 0))]
    seen = set()

    def record_dtype(module, inputs, output):
        if isinstance(output, torch.Tensor):
            seen.add(output.dtype)

    hooks = [m.register_forward_hook(record_dtype) for m in model.modules()]
    with EventStorage(0), torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(clips)
    for h in hooks:
        h.remove()
    assert torch.bfloat16 in seen  # autocast really ran part of the model in bfloat16
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_mask_prop"} <= set(losses)
    for k, v in losses.items():
        assert torch.isfinite(v), k
    assert 0.0 < losses["loss_mask_prop"].item() <= 1.0

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.zero_grad()
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
    head = model.roi_heads.mask_prop_head
    assert head.deform_weight.grad is not None and head.deform_weight.grad.abs().sum() > 0
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "roi_heads.mask_prop_head.deform_weight" in changed
