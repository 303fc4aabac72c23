#!/usr/bin/env python
"""Train and evaluate MaskProp with detectron2.

python train_net.py --config-file configs/synthetic/maskprop_tiny.yaml
python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS model_final.pth
python train_net.py --config-file CFG --num-gpus 8
torchrun --nproc_per_node 2 train_net.py --config-file CFG   (CPU or GPU: docs/distributed.md)
"""

from maskprop_d2._cli_warnings import quiet_known_warnings

if __name__ in ("__main__", "__mp_main__"):
    # Run as a program (or as its --num-gpus workers, which import it as __mp_main__): ignore the
    # known deprecation warnings of detectron2 v0.6 / fvcore on the current torch, before
    # detectron2 is imported (importing maskprop_d2 imports neither). A user's -W wins.
    quiet_known_warnings()

import functools
import logging
import os
import sys

import detectron2.utils.comm as comm
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup
from detectron2.evaluation import verify_results
from detectron2.utils.logger import setup_logger

from maskprop_d2 import get_maskprop_cfg
from maskprop_d2.checkpoint import AtomicCheckpointer, check_output_dir, use_atomic_checkpointer
from maskprop_d2.data import build_clip_train_loader, build_video_test_loader
from maskprop_d2.distributed import launch, project_ddp
from maskprop_d2.evaluation import YTVISEvaluator
from maskprop_d2.inference import VideoInferenceAdapter, check_inference_config
from maskprop_d2.solver import build_optimizer


class Trainer(DefaultTrainer):
    """DefaultTrainer with clip loaders, the YouTube-VIS evaluator and streaming video tests
    (detectron2's own ``test`` loop, fed videos through ``VideoInferenceAdapter``)."""

    def __init__(self, cfg):
        with project_ddp():  # DDP on CPU too, parameters without a gradient allowed
            super().__init__(cfg)

    def build_hooks(self):
        use_atomic_checkpointer(self)  # atomic saves; --resume falls back to a readable file
        return super().build_hooks()

    # detectron2 v0.6's DefaultTrainer checkpoints the iteration and the hooks' state (the LR
    # scheduler) but not its inner trainer's: the optimizer (SGD momentum, AdamW moments) and
    # AMP's grad scaler. Later versions add them under "_trainer", as done here.
    _D2_SAVES_TRAINER_STATE = "state_dict" in DefaultTrainer.__dict__

    def state_dict(self):
        ret = super().state_dict()
        if not self._D2_SAVES_TRAINER_STATE:
            ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self._D2_SAVES_TRAINER_STATE:
            return
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        else:  # a checkpoint written before the optimizer was saved
            logging.getLogger("maskprop_d2").warning(
                "the checkpoint holds no optimizer state: the optimizer restarts from zero "
                "(SGD momentum, AdamW moments) at iteration %d", self.iter + 1)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_clip_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_video_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return YTVISEvaluator.from_config(cfg, dataset_name, output_dir=output_folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """DefaultTrainer.test with the model wrapped for videos: each video of
        ``cfg.DATASETS.TEST`` streams through the tracker of ``MODEL.MASKPROP.INFERENCE.TRACKER``
        and ``evaluators`` (default: ``build_evaluator``) receive its result entries."""
        return super().test(cfg, VideoInferenceAdapter.from_config(cfg, model), evaluators)


def setup(args):
    cfg = get_maskprop_cfg(args.config_file, args.opts)
    check_inference_config(cfg, args.config_file)  # tracker, thresholds: before iteration 0
    cfg.freeze()
    check_output_dir(cfg.OUTPUT_DIR)  # before anything is built or written
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="maskprop_d2")
    return cfg


def _one_line_errors(fn):
    """Input errors the project names precisely (a config value, a config or weight file that
    would run code, weights that leave the model incomplete, too many unreadable frames) end
    the run with that one line (exit status 1) instead of a traceback."""
    from maskprop_d2.checkpoint import IncompleteWeightsError
    from maskprop_d2.config import ConfigValueError
    from maskprop_d2.data.build import SkippedClipsError
    from maskprop_d2.utils.safe_load import ConfigFileError, WeightFileError

    @functools.wraps(fn)  # pickled by name for --num-gpus workers
    def wrapped(*a, **k):
        try:
            return fn(*a, **k)
        except (ConfigValueError, ConfigFileError, WeightFileError, IncompleteWeightsError,
                SkippedClipsError) as e:
            sys.exit("error: {}".format(e))

    return wrapped


@_one_line_errors
def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        checkpointer = AtomicCheckpointer(model, save_dir=cfg.OUTPUT_DIR)
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        checkpointer.require_complete(args.config_file)  # no parameter left at random
        res = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
        return res
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    # detectron2's launch, or (under torchrun) this process joins the launcher's process group
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
        # CPU processes join with gloo also on a machine with (fewer) GPUs
        device=get_maskprop_cfg(args.config_file, args.opts).MODEL.DEVICE,
    )
