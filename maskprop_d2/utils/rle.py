"""COCO run-length encoding of masks (numpy and pycocotools only, no torch).

The YouTube-VIS formats store one segmentation per frame: a compressed RLE
``{"size": [H, W], "counts": str}``, an uncompressed RLE (``counts`` a list of ints), a polygon
list, or ``null`` where the object is absent.
"""

from typing import Any, Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util

__all__ = ["encode_mask", "encode_masks", "decode_segmentation"]


def encode_masks(masks: np.ndarray) -> List[Dict[str, Any]]:
    """(N, H, W) binary masks -> N compressed RLEs ``{"size": [H, W], "counts": str}``
    (JSON-ready), in one pycocotools call."""
    masks = np.asarray(masks)
    if len(masks) == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
        r["size"] = [int(s) for s in r["size"]]
    return rles


def encode_mask(mask: np.ndarray) -> Dict[str, Any]:
    """Binary (H, W) mask -> compressed RLE ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    rle["size"] = [int(s) for s in rle["size"]]
    return rle


def decode_segmentation(seg: Optional[Any], height: int, width: int) -> np.ndarray:
    """Decode an RLE (compressed or uncompressed counts), a polygon list or None (absent) to a
    (H, W) uint8 mask."""
    if seg is None:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(seg, dict):
        if list(seg["size"]) != [height, width]:
            raise ValueError(
                "RLE of size {} does not match the frame size {}".format(
                    list(seg["size"]), [height, width]
                )
            )
        rle = mask_util.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else seg
    elif isinstance(seg, (list, tuple)):
        polys = [np.asarray(p, dtype=np.float64).ravel().tolist() for p in seg]
        polys = [p for p in polys if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), dtype=np.uint8)
        rle = mask_util.merge(mask_util.frPyObjects(polys, height, width))
    else:
        raise TypeError("unsupported segmentation type {}".format(type(seg)))
    return mask_util.decode(rle).astype(np.uint8, copy=False)
