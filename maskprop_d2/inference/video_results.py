"""Turn a stream of FrameOutputs into YouTube-VIS result entries (compressed RLE per frame)."""

from typing import Dict, Iterable, List

import numpy as np
import pycocotools.mask as mask_util

from .video_inference import FrameOutput, VideoInstance

__all__ = ["encode_frame_masks", "collect_video_results"]


def encode_frame_masks(out: FrameOutput) -> Dict[int, dict]:
    """{instance id: compressed RLE with str counts} for one frame, all masks in one encode call."""
    if len(out.ids) == 0:
        return {}
    arr = np.asfortranarray(out.masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
    rles = mask_util.encode(arr)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return dict(zip(out.ids.tolist(), rles, strict=True))


def collect_video_results(stream: Iterable[FrameOutput], instances_fn, length: int) -> List[dict]:
    """Consume a video's frame stream and build its result entries.

    Args:
        stream: FrameOutputs of frames 0..length-1 in order.
        instances_fn: called after the stream ends, returns List[VideoInstance] (sorted, capped).
        length: number of frames of the video.
    Returns:
        list of {"category_id" (contiguous), "score", "segmentations": [RLE | None] * length}.
    Only the compact RLEs are kept, never the masks of past frames.
    """
    per_id: Dict[int, Dict[int, dict]] = {}
    seen = 0
    for out in stream:
        if out.frame_idx != seen:
            raise RuntimeError(
                "frame stream out of order: got {}, expected {}".format(out.frame_idx, seen)
            )
        seen += 1
        for y, rle in encode_frame_masks(out).items():
            per_id.setdefault(y, {})[out.frame_idx] = rle
    if seen != length:
        raise RuntimeError("video has {} frames but the stream produced {}".format(length, seen))
    results = []
    inst: VideoInstance
    for inst in instances_fn():
        frames = per_id.get(inst.id)
        if not frames:
            continue
        segs = [frames.get(f) for f in range(length)]
        results.append(
            {"category_id": inst.category_id, "score": inst.score, "segmentations": segs}
        )
    return results
