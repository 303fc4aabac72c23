"""A video's FrameOutputs -> YouTube-VIS result entries (compressed RLE per frame).

The one place that assembles result entries: the evaluation adapter
(:class:`~maskprop_d2.inference.VideoInferenceAdapter`), the demo's ``--json`` and the oracle
check use it. Only the compact RLEs of past frames are kept, never their masks.
"""

from typing import Callable, Dict, Iterable, List, Optional

from ..tracking.outputs import FrameOutput, VideoInstance
from ..utils.rle import encode_masks

__all__ = ["encode_frame_masks", "VideoResultsCollector", "collect_video_results"]


def encode_frame_masks(out: FrameOutput) -> Dict[int, dict]:
    """{instance id: compressed RLE with str counts} for one frame, all masks in one encode call."""
    if len(out.ids) == 0:
        return {}
    rles = encode_masks(out.masks.cpu().numpy())
    return dict(zip(out.ids.tolist(), rles, strict=True))


class VideoResultsCollector:
    """Collects one video's frames, in order, then builds its result entries.

    Usage::

        collector = VideoResultsCollector()
        for out in tracker.stream(frames):
            collector.add(out)
        entries = collector.results(tracker.video_instances())
    """

    def __init__(self):
        self._per_id: Dict[int, Dict[int, dict]] = {}
        self.num_frames = 0

    def add(self, out: FrameOutput) -> None:
        """Record a frame's masks (RLE-encoded); frames must come as 0, 1, 2, ..."""
        if out.frame_idx != self.num_frames:
            raise RuntimeError(
                "frame stream out of order: got {}, expected {}".format(
                    out.frame_idx, self.num_frames
                )
            )
        self.num_frames += 1
        for y, rle in encode_frame_masks(out).items():
            self._per_id.setdefault(y, {})[out.frame_idx] = rle

    def results(
        self, instances: Iterable[VideoInstance], length: Optional[int] = None
    ) -> List[dict]:
        """Result entries ``{"category_id" (contiguous), "score", "segmentations": [RLE | None]
        * length}``, one per video instance (in the given order) that is visible in some frame.

        Args:
            instances: the tracker's ranked video instances.
            length: the video's number of frames; it must equal the number of frames added.
                Default: the number of frames added.
        """
        length = self.num_frames if length is None else int(length)
        if length != self.num_frames:
            raise RuntimeError(
                "video has {} frames but the stream produced {}".format(length, self.num_frames)
            )
        entries = []
        for inst in instances:
            frames = self._per_id.get(inst.id)
            if not frames:
                continue
            segs = [frames.get(f) for f in range(length)]
            entries.append(
                {"category_id": inst.category_id, "score": inst.score, "segmentations": segs}
            )
        return entries


def collect_video_results(
    stream: Iterable[FrameOutput],
    instances_fn: Callable[[], List[VideoInstance]],
    length: int,
) -> List[dict]:
    """Consume a video's frame stream and build its result entries.

    Args:
        stream: FrameOutputs of frames 0..length-1 in order.
        instances_fn: called after the stream ends, returns List[VideoInstance] (sorted, capped).
        length: number of frames of the video.
    Returns:
        list of {"category_id" (contiguous), "score", "segmentations": [RLE | None] * length}.
    """
    collector = VideoResultsCollector()
    for out in stream:
        collector.add(out)
    return collector.results(instances_fn(), length)
