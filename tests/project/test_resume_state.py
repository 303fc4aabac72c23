"""--resume restores the whole training state: the checkpoints ``train_net.Trainer`` writes hold
the optimizer (AdamW's moments, its step count), the LR scheduler and the iteration, and a run
resumed from one continues exactly as the run that was not stopped.

The runs train the tiny config (AdamW, LR warm-up) on one fixed batch, rebuilt for every step,
with torch's, numpy's and Python's RNGs seeded by the iteration before each step: a resumed step
then repeats the uninterrupted run's step exactly when, and only when, every piece of state
came back (a resume without the optimizer's state moves the weights visibly elsewhere)."""

import logging
import random
import shutil

import numpy as np
import pytest
import torch
from detectron2.engine import hooks

from maskprop_d2.utils.safe_load import load_torch_weights
from tests.helpers import load_script, make_clip, tiny_cfg


@pytest.fixture(scope="module")
def trainer_class():
    train_net = load_script("train_net", "train_net.py")

    class FixedBatchTrainer(train_net.Trainer):
        @classmethod
        def build_train_loader(cls, cfg):
            def batches():
                while True:  # fresh tensors each step: nothing a step changes carries over
                    yield [make_clip(), make_clip(n_frames=2, center=0, absent=(1, 0))]

            return batches()

        def build_hooks(self):
            def seed(trainer):
                torch.manual_seed(trainer.iter)
                np.random.seed(trainer.iter)
                random.seed(trainer.iter)

            return [hooks.CallbackHook(before_step=seed)] + super().build_hooks()

    return FixedBatchTrainer


@pytest.fixture
def d2_logger_at_info():
    """detectron2's logger enabled for INFO, so that DefaultTrainer does not install its own
    handlers (``setup_logger``) for the rest of the session."""
    logger = logging.getLogger("detectron2")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def _train(trainer_class, out, resume, max_iter=3):
    cfg = tiny_cfg()
    cfg.merge_from_list(["OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", max_iter,
                         "SOLVER.CHECKPOINT_PERIOD", 2, "DATASETS.TEST", "()", "SEED", 0])
    cfg.freeze()
    torch.manual_seed(0)  # the same initial weights in every run
    trainer = trainer_class(cfg)
    trainer.resume_or_load(resume=resume)
    start = trainer.start_iter
    trainer.train()
    return start


def _resume_dir(src, dst, strip_optimizer=False):
    dst.mkdir()
    if strip_optimizer:  # a checkpoint as detectron2 v0.6's DefaultTrainer writes it
        ckpt = load_torch_weights(str(src))
        del ckpt["trainer"]["_trainer"]
        torch.save(ckpt, str(dst / src.name))
    else:
        shutil.copy(src, dst / src.name)
    (dst / "last_checkpoint").write_text(src.name)
    return dst


def _max_diff(a, b):
    """Largest absolute difference between the trained parameters of two state dicts (batch
    norm's running statistics left out: they move with the data, not the optimizer)."""
    keys = [k for k in a if a[k].is_floating_point() and ".running_" not in k]
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in keys)


def test_resume_restores_optimizer_scheduler_and_iteration(
    trainer_class, d2_logger_at_info, tmp_path, caplog
):
    whole = tmp_path / "whole"
    assert _train(trainer_class, whole, resume=False) == 0  # writes model_0000001, model_final

    ckpt = load_torch_weights(str(whole / "model_0000001.pth"))  # the project's safe loader
    state = ckpt["trainer"]
    assert ckpt["iteration"] == 1 and state["iteration"] == 1
    opt = state["_trainer"]["optimizer"]
    moments = [s for s in opt["state"].values() if "exp_avg_sq" in s]
    assert moments and all(float(s["step"]) == 2 for s in moments)  # AdamW after 2 steps
    assert any(float(s["exp_avg"].abs().max()) > 0 for s in moments)
    assert state["hooks"]["LRScheduler"]["last_epoch"] == 2

    resumed = _resume_dir(whole / "model_0000001.pth", tmp_path / "resumed")
    assert _train(trainer_class, resumed, resume=True) == 2
    final_whole = load_torch_weights(str(whole / "model_final.pth"))
    final_resumed = load_torch_weights(str(resumed / "model_final.pth"))
    start = ckpt["model"]
    step = _max_diff(final_whole["model"], start)
    assert step > 0
    assert _max_diff(final_whole["model"], final_resumed["model"]) <= 1e-6 * step
    for key in ("exp_avg", "exp_avg_sq"):
        a = final_whole["trainer"]["_trainer"]["optimizer"]["state"]
        b = final_resumed["trainer"]["_trainer"]["optimizer"]["state"]
        assert all(torch.allclose(a[i][key], b[i][key], rtol=1e-6, atol=0) for i in a)
    assert final_resumed["trainer"]["hooks"] == final_whole["trainer"]["hooks"]
    assert final_resumed["iteration"] == final_whole["iteration"] == 2

    # the same resume without the optimizer's state (an old checkpoint): warned, and the step
    # goes elsewhere, which the comparison above would have caught
    old = _resume_dir(whole / "model_0000001.pth", tmp_path / "old", strip_optimizer=True)
    with caplog.at_level(logging.WARNING, logger="maskprop_d2"):
        assert _train(trainer_class, old, resume=True) == 2
    assert "holds no optimizer state" in caplog.text
    final_old = load_torch_weights(str(old / "model_final.pth"))
    assert _max_diff(final_whole["model"], final_old["model"]) > 0.1 * step
