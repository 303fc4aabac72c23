"""A narrow ResNet-10/18/34 + FPN backbone for small CPU models.

detectron2's ``build_resnet_backbone`` fixes the widths of ResNet-18/34 at 64-128-256-512
(``RES2_OUT_CHANNELS`` must be 64) and has no ResNet-10. ``build_basic_resnet_fpn_backbone``
builds the same network (BasicStem; BasicBlock stages [2, 2, 2, 2] or [3, 4, 6, 3], or
[1, 1, 1, 1] with ``DEPTH: 10``; FPN with a max-pooled p6) with ``RES2_OUT_CHANNELS`` free:
res2..res5 have ``c, 2c, 4c, 8c`` channels. Half the width costs about a quarter of the FLOPs,
which pays for a twice larger input on CPU.
"""

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import FPN, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem

__all__ = ["build_basic_resnet_fpn_backbone"]

_BLOCKS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


@BACKBONE_REGISTRY.register()
def build_basic_resnet_fpn_backbone(cfg, input_shape: ShapeSpec):
    """ResNet-10/18/34 of any width (``MODEL.RESNETS.RES2_OUT_CHANNELS``) + FPN (``MODEL.FPN``)."""
    r = cfg.MODEL.RESNETS
    if r.DEPTH not in _BLOCKS:
        raise ValueError(
            "build_basic_resnet_fpn_backbone builds ResNet-10/18/34 (BasicBlock); "
            "MODEL.RESNETS.DEPTH={} (use build_resnet_fpn_backbone)".format(r.DEPTH)
        )
    stem = BasicStem(input_shape.channels, r.STEM_OUT_CHANNELS, norm=r.NORM)
    stages, in_ch, out_ch = [], r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    for i, n in enumerate(_BLOCKS[r.DEPTH]):
        stride = 1 if i == 0 else 2
        stages.append(
            ResNet.make_stage(
                block_class=BasicBlock,
                num_blocks=n,
                stride_per_block=[stride] + [1] * (n - 1),
                in_channels=in_ch,
                out_channels=out_ch,
                norm=r.NORM,
            )
        )
        in_ch, out_ch = out_ch, out_ch * 2
    bottom_up = ResNet(
        stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT
    )
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
