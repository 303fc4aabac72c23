"""Tests of the propagation loss (maskprop_d2/modeling/prop_loss.py) on hand-made masks."""
import pytest
import torch

from maskprop_d2.modeling.prop_loss import mask_prop_loss

BIG = 40.0  # sigmoid(±40) is 1 / 4e-18: binary up to float32 rounding


def _logits(prob):
    """Logits whose sigmoid is ``prob`` (0 and 1 mapped to ∓BIG)."""
    prob = torch.as_tensor(prob, dtype=torch.float32)
    out = torch.logit(prob.clamp(1e-12, 1 - 1e-12))
    out = torch.where(prob <= 0, torch.tensor(-BIG), out)
    return torch.where(prob >= 1, torch.tensor(BIG), out)


def test_identical_binary_is_zero():
    gt = torch.zeros(1, 4, 5)
    gt[0, 1:3, 1:4] = 1
    loss = mask_prop_loss(_logits(gt), gt)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_disjoint_is_one():
    gt = torch.zeros(1, 4, 5)
    gt[0, :2] = 1
    pred = torch.zeros(1, 4, 5)
    pred[0, 2:] = 1
    assert mask_prop_loss(_logits(pred), gt).item() == pytest.approx(1.0, abs=1e-6)


def test_soft_case_by_hand():
    # GT = 1 on 2 px; pred 0.5 on those 2 px and 0.5 on 2 px where GT = 0, 0 elsewhere.
    # inter = 0.5 + 0.5 = 1; union = sum(pred) + sum(gt) - inter = 2 + 2 - 1 = 3 -> IoU 1/3.
    gt = torch.zeros(1, 3, 3)
    gt[0, 0, 0] = gt[0, 0, 1] = 1
    pred = torch.zeros(1, 3, 3)
    pred[0, 0, 0] = pred[0, 0, 1] = pred[0, 2, 1] = pred[0, 2, 2] = 0.5
    assert mask_prop_loss(_logits(pred), gt).item() == pytest.approx(1 - 1 / 3, abs=1e-6)
    # GT = 1 on 4 px, pred 0.5 on 2 of them: inter 1, union 1 + 4 - 1 = 4 -> IoU 1/4.
    gt2 = torch.zeros(1, 3, 3)
    gt2[0, 1] = 1
    gt2[0, 2, 0] = 1
    pred2 = torch.zeros(1, 3, 3)
    pred2[0, 1, 0] = pred2[0, 1, 1] = 0.5
    assert mask_prop_loss(_logits(pred2), gt2).item() == pytest.approx(0.75, abs=1e-6)
    # rows are averaged
    both = mask_prop_loss(torch.cat([_logits(pred), _logits(pred2)]), torch.cat([gt, gt2]))
    assert both.item() == pytest.approx((2 / 3 + 0.75) / 2, abs=1e-6)


def test_soft_gt():
    # soft GT 0.5 on 2 px, pred 1 on the same 2 px: inter 1, union 2 + 1 - 1 = 2 -> IoU 0.5
    gt = torch.zeros(1, 2, 2)
    gt[0, 0] = 0.5
    pred = torch.zeros(1, 2, 2)
    pred[0, 0] = 1
    assert mask_prop_loss(_logits(pred), gt).item() == pytest.approx(0.5, abs=1e-6)


def test_both_empty_is_zero_and_absent_instance_penalises_mass():
    gt = torch.zeros(1, 4, 4)
    # empty prediction on an absent instance: perfect (soft_iou's empty/empty = 1)
    assert mask_prop_loss(torch.full((1, 4, 4), -BIG), gt).item() == pytest.approx(0.0, abs=1e-6)
    # predicted mass q on an absent instance costs q / (q + 1): 1 px -> 0.5, 15 px -> 15/16
    one = torch.zeros(1, 4, 4)
    one[0, 0, 0] = 1
    assert mask_prop_loss(_logits(one), gt).item() == pytest.approx(0.5, abs=1e-6)
    many = torch.ones(1, 4, 4)
    many[0, 0, 0] = 0
    assert mask_prop_loss(_logits(many), gt).item() == pytest.approx(15 / 16, abs=1e-6)
    # the gradient pushes a (weak) prediction on an absent instance down
    logits = torch.full((1, 4, 4), -2.0, requires_grad=True)
    loss = mask_prop_loss(logits, gt)
    assert 0 < loss.item() < 1
    loss.backward()
    assert (logits.grad > 0).all()


def test_gradient_finite_and_descends():
    torch.manual_seed(0)
    gt = (torch.rand(3, 6, 6) > 0.5).float()
    gt[2] = 0  # one absent instance
    logits = torch.zeros(3, 6, 6, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.5)
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = mask_prop_loss(logits, gt)
        first = loss.item() if first is None else first
        loss.backward()
        assert torch.isfinite(logits.grad).all()
        opt.step()
    assert mask_prop_loss(logits, gt).item() < 0.5 * first


def test_empty_batch_and_errors():
    pred = torch.zeros(0, 5, 5, requires_grad=True)
    loss = mask_prop_loss(pred, torch.zeros(0, 5, 5))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    with pytest.raises(ValueError):
        mask_prop_loss(torch.zeros(2, 5, 5), torch.zeros(2, 5, 4))


def test_cross_entropy_term_adds_the_weighted_mean_pixel_bce():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 6)
    gt = (torch.rand(3, 6, 6) > 0.5).float()
    gt[1] = 0
    plain = mask_prop_loss(logits, gt)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, gt)
    both = mask_prop_loss(logits, gt, bce_weight=0.5)
    assert both.item() == pytest.approx(plain.item() + 0.5 * bce.item(), rel=1e-6)
    # a perfect binary prediction costs nothing with it either
    sure = _logits(gt)
    assert mask_prop_loss(sure, gt, bce_weight=1.0).item() == pytest.approx(0.0, abs=1e-5)
