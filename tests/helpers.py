"""Paths and small builders shared by the tests; every path is resolved from this file, so the
suite runs from any working directory."""

import importlib.util
import os

import torch
from detectron2.config import get_cfg
from detectron2.structures import BitMasks, Instances

from maskprop_d2 import add_maskprop_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(REPO_ROOT, "configs", "synthetic", "maskprop_tiny.yaml")


def repo_path(*parts):
    """Absolute path of ``parts`` under the repository root."""
    return os.path.join(REPO_ROOT, *parts)


def load_script(name, *parts):
    """A fresh module object of the script ``REPO_ROOT/parts`` (``tools/``, ``demo/``,
    ``train_net.py``: scripts, not part of the package), executed under the module name ``name``."""
    spec = importlib.util.spec_from_file_location(name, repo_path(*parts))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_cfg():
    """A fresh config of ``configs/synthetic/maskprop_tiny.yaml`` on the CPU."""
    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(TINY_CONFIG)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def save_random_checkpoint(config_file, path, seed=0):
    """Save ``{"model": state_dict}`` of a randomly initialised model of ``config_file`` (on the
    CPU, torch seed ``seed``) to ``path``: complete weights for that config."""
    from detectron2.modeling import build_model

    cfg = get_cfg()
    add_maskprop_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(seed)
    torch.save({"model": build_model(cfg).state_dict()}, str(path))
    return str(path)


def make_clip(n_frames=3, h=64, w=96, center=1, absent=(2, 1), shift=0, textured=False):
    """A training clip (what ClipDatasetMapper gives): two squares moving right; object
    `absent[1]` is missing in frame `absent[0]`. Object 0 starts `shift` px further right;
    `textured`: a random background (seeded by `shift`) instead of a flat one."""
    g = torch.Generator().manual_seed(shift)
    images, insts = [], []
    for f in range(n_frames):
        if textured:
            img = torch.randint(40, 80, (3, h, w), generator=g, dtype=torch.uint8)
        else:
            img = torch.full((3, h, w), 60, dtype=torch.uint8)
        masks = torch.zeros(2, h, w, dtype=torch.bool)
        masks[0, 10:30, 5 + 3 * f + shift : 25 + 3 * f + shift] = True
        masks[1, 35:55, 50 + 2 * f : 66 + 2 * f] = True
        ids = torch.tensor([3, 7])
        if f == absent[0]:
            masks[absent[1]] = False
            ids[absent[1]] = -1
        img[:, masks[0]] = 200
        img[0, masks[1]] = 250
        inst = Instances((h, w))
        inst.gt_ids = ids
        inst.gt_classes = torch.tensor([0, 2])
        inst.gt_masks = BitMasks(masks)
        inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
        images.append(img)
        insts.append(inst)
    return {
        "video_id": 1,
        "height": h,
        "width": w,
        "frame_ids": list(range(n_frames)),
        "center": center,
        "image": images,
        "instances": insts,
    }
