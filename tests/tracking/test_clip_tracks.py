"""ClipTrackAggregator: tracks that may only continue an ID (``may_start``)."""

import torch

from maskprop_d2.tracking import ClipTrackAggregator, FrameGeometry


def _track(col0, col1, frames):
    """(F, 2, 4) soft masks: ones in columns col0..col1 (inclusive), every frame."""
    m = torch.zeros((frames, 2, 4))
    m[:, :, col0 : col1 + 1] = 1.0
    return m


def test_dropped_tracks_leave_no_masks_and_no_votes():
    agg = ClipTrackAggregator(half_length=1, match_thresh=0.3, mask_thresh=0.5, num_classes=3)
    for f in range(3):
        agg.set_geometry(f, FrameGeometry((2, 4), (2, 4)))
    # clip 0 (frames 0-1): one object on the left, ID 0
    ids = agg.add_clip(0, range(0, 2), _track(0, 1, 2)[None], torch.tensor([0]),
                       torch.tensor([0.9]))
    assert ids == [0]
    # clip 1 (frames 0-2): the left object again (low score, may not start: continues ID 0) and a
    # low-score object on the right (no earlier ID to continue: dropped)
    tracks = torch.stack([_track(0, 1, 3), _track(3, 3, 3)])
    ids = agg.add_clip(1, range(0, 3), tracks, torch.tensor([0, 2]), torch.tensor([0.4, 0.4]),
                       class_probs=None, may_start=torch.tensor([False, False]))
    assert ids == [0, -1]
    assert agg.num_ids == 1
    for f in range(2):
        out = agg.emit(f)
        assert out.ids.tolist() == [0]
        assert out.masks[0, :, :2].all() and not out.masks[0, :, 2:].any()
    # the dropped track voted for nothing: ID 0 has class 0 only, and no ID 1 exists
    inst = agg.current_instance(0)
    assert inst is not None and inst.category_id == 0
    assert agg.current_instance(1) is None
    # with may_start True the same right-hand track starts ID 1
    agg2 = ClipTrackAggregator(half_length=1, match_thresh=0.3, mask_thresh=0.5, num_classes=3)
    agg2.add_clip(0, range(0, 2), _track(0, 1, 2)[None], torch.tensor([0]), torch.tensor([0.9]))
    assert agg2.add_clip(1, range(0, 3), tracks, torch.tensor([0, 2]), torch.tensor([0.4, 0.4]),
                         may_start=torch.tensor([True, True])) == [0, 1]
