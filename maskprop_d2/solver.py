"""Optimizer choice for MaskProp training (detectron2 v0.6 builds only SGD)."""

import torch
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

__all__ = ["build_optimizer"]

OPTIMIZERS = ("SGD", "ADAMW")


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER``: "SGD" (detectron2's default: momentum, weight decay) or "ADAMW"
    (``SOLVER.BETAS``, decoupled weight decay ``SOLVER.WEIGHT_DECAY``). Parameter groups and
    gradient clipping follow detectron2's ``build_optimizer``."""
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name not in OPTIMIZERS:
        raise ValueError(
            "SOLVER.OPTIMIZER must be one of {}, got {!r}".format(OPTIMIZERS, cfg.SOLVER.OPTIMIZER)
        )
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    if name == "SGD":
        return maybe_add_gradient_clipping(cfg, torch.optim.SGD)(
            params,
            lr=cfg.SOLVER.BASE_LR,
            momentum=cfg.SOLVER.MOMENTUM,
            nesterov=cfg.SOLVER.NESTEROV,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
    return maybe_add_gradient_clipping(cfg, torch.optim.AdamW)(
        params,
        lr=cfg.SOLVER.BASE_LR,
        betas=tuple(cfg.SOLVER.BETAS),
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
    )
