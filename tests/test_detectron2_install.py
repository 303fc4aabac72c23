"""The detectron2 this project runs on: Mask R-CNN builds, trains a step and infers on CPU."""

import importlib.util
import os

import pytest
import torch


def _tiny_mask_rcnn_cfg():
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    )
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 64
    return cfg


def test_imports_and_env_report():
    import detectron2
    from detectron2.utils.collect_env import collect_env_info

    import maskprop_d2  # noqa: F401

    assert tuple(int(x) for x in detectron2.__version__.split(".")[:2]) >= (0, 6)
    assert "detectron2" in collect_env_info()


def test_stand_in_ops_raise_clear_error():
    spec = importlib.util.find_spec("detectron2")
    stand_in = os.path.join(os.path.dirname(spec.origin), "_C.py")
    if not os.path.isfile(stand_in):
        pytest.skip("detectron2 was built with its compiled ops")
    from detectron2 import _C

    assert _C.has_cuda() is False
    with pytest.raises(RuntimeError, match="deform_conv_forward.*MaskProp does not need"):
        _C.deform_conv_forward(None)


def test_mask_rcnn_trains_one_step_and_infers_on_cpu():
    from detectron2.modeling import build_model
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    cfg = _tiny_mask_rcnn_cfg()
    model = build_model(cfg)
    h, w = 64, 96
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 40.0, 50.0]]))
    inst.gt_classes = torch.tensor([1])
    masks = torch.zeros(1, h, w, dtype=torch.bool)
    masks[0, 12:50, 10:40] = True
    inst.gt_masks = BitMasks(masks)
    batch = [{"image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8), "instances": inst}]

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with EventStorage(0):
        losses = model(batch)
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    opt.zero_grad()
    total.backward()
    opt.step()

    model.eval()
    with torch.no_grad():
        out = model([{"image": batch[0]["image"], "height": 32, "width": 48}])
    assert out[0]["instances"].image_size == (32, 48)
