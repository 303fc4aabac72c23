"""The mask combination of ClipTrackAggregator: ground-truth masks in, the same masks out.

Oracle clip tracks: every object's detection at frame t carries its exact (binary) mask there,
and its clip track carries *degraded* masks elsewhere (shifted by a pixel per frame of distance, as
an imperfect propagation would). With the "distance" combination (λ < 1/3) every output mask
equals the input mask exactly, wherever the object was detected; with the paper's "mean" the
propagated masks bleed into the output. Tolerance: exact equality (0 pixels differ).
"""

import pytest
import torch

from maskprop_d2.tracking import ClipTrackAggregator, FrameGeometry

H, W, L, T = 12, 16, 7, 2


def _gt():
    """(2, L, H, W) bool: two objects moving right one pixel a frame, rows apart."""
    gt = torch.zeros((2, L, H, W), dtype=torch.bool)
    for f in range(L):
        gt[0, f, 1:5, 1 + f : 5 + f] = True
        gt[1, f, 7:11, 8 - f // 2 : 13 - f // 2] = True
    return gt


def _run(combination, decay=0.25):
    gt = _gt()
    agg = ClipTrackAggregator(T, match_thresh=0.05, mask_thresh=0.5, num_classes=2,
                              combination=combination, distance_decay=decay)  # fmt: skip
    for f in range(L):
        agg.set_geometry(f, FrameGeometry((H, W), (H, W)))
    outs = []
    for t in range(L):
        frames = range(max(0, t - T), min(L, t + T + 1))
        # propagated masks: the GT shifted by |f - t| pixels to the right (an imperfect head)
        tracks = torch.stack([
            torch.stack([torch.roll(gt[i, f], abs(f - t), dims=1).float() for f in frames])
            for i in range(2)])  # fmt: skip

        def center(t=t):
            return gt[:, t].float()

        agg.add_clip(t, frames, tracks, torch.tensor([0, 1]), torch.tensor([0.9, 0.8]), center)
        if t - T >= 0:
            outs.append(agg.emit(t - T))
    outs += [agg.emit(f) for f in range(max(0, L - T), L)]
    return gt, outs


def test_distance_combination_returns_the_input_masks_exactly():
    gt, outs = _run("distance")
    assert [o.frame_idx for o in outs] == list(range(L))
    for o in outs:
        assert o.ids.tolist() == [0, 1]
        assert torch.equal(o.masks, gt[:, o.frame_idx])


def test_paper_mean_degrades_the_same_masks():
    gt, outs = _run("mean")
    wrong = sum(int((o.masks != gt[:, o.frame_idx]).sum()) for o in outs)
    assert wrong > 0


def test_distance_weights_and_validation():
    agg = ClipTrackAggregator(1, 0.3, 0.5, 2, combination="distance", distance_decay=0.25)
    assert [agg.weight(d) for d in (0, 1, -2)] == [1.0, 0.25, 0.0625]
    assert ClipTrackAggregator(1, 0.3, 0.5, 2).weight(3) == 1.0  # the paper's mean
    with pytest.raises(ValueError, match="mask combination"):
        ClipTrackAggregator(1, 0.3, 0.5, 2, combination="median")
    with pytest.raises(ValueError, match="distance_decay"):
        ClipTrackAggregator(1, 0.3, 0.5, 2, combination="distance", distance_decay=0.0)


def test_undetected_frames_are_filled_by_the_nearest_tracks():
    """An object missed at frame 3: its mask there comes from the propagated tracks alone, the
    nearest (distance 1) dominating those at distance 2."""
    gt = _gt()[:1]
    agg = ClipTrackAggregator(T, 0.05, 0.5, 2, combination="distance", distance_decay=0.25)
    for f in range(L):
        agg.set_geometry(f, FrameGeometry((H, W), (H, W)))
    outs = {}
    for t in range(L):
        frames = range(max(0, t - T), min(L, t + T + 1))
        if t != 3:
            # distance-1 tracks are exact, distance-2 tracks shifted by 2 px
            tracks = torch.stack([torch.roll(gt[0, f], 2 * (abs(f - t) == 2), dims=1).float()
                                  for f in frames])[None]  # fmt: skip
            agg.add_clip(t, frames, tracks, torch.tensor([0]), torch.tensor([0.9]),
                         lambda t=t: gt[:, t].float())  # fmt: skip
        else:
            agg.add_clip(t, frames, torch.zeros((0, len(frames), H, W)), torch.zeros(0).long(),
                         torch.zeros(0))  # fmt: skip
        if t - T >= 0:
            o = agg.emit(t - T)
            outs[o.frame_idx] = o
    assert torch.equal(outs[3].masks[0], gt[0, 3])


def test_suppress_covered_drops_an_undetected_copy_of_a_detected_object():
    """Two IDs of one object (a fragment): at frame 2 only ID 1 is detected; ID 0's propagated
    mask lies on it and is dropped with suppress_covered < 1, kept with 1 (the paper)."""
    m = torch.zeros(H, W)
    m[2:6, 2:6] = 1.0
    for thresh, expect in ((0.5, [1]), (1.0, [0, 1])):
        agg = ClipTrackAggregator(1, match_thresh=0.99, mask_thresh=0.5, num_classes=2,
                                  combination="distance", suppress_covered=thresh)  # fmt: skip
        for f in range(3):
            agg.set_geometry(f, FrameGeometry((H, W), (H, W)))
        # clip 1 (frames 0-2): ID 0 with an empty mask at its centre... then its copy at frame 2
        agg.add_clip(0, range(0, 2), torch.stack([m, m])[None], torch.tensor([0]),
                     torch.tensor([0.9]))  # fmt: skip
        agg.add_clip(1, range(0, 3), torch.stack([m, m, m])[None], torch.tensor([0]),
                     torch.tensor([0.9]))  # fmt: skip
        # clip 2: the same object, matched below the (high) threshold: a new ID 1, detected
        ids = agg.add_clip(2, range(1, 3), torch.stack([m * 0.6, m])[None], torch.tensor([0]),
                           torch.tensor([0.9]))  # fmt: skip
        assert ids == [1]
        out = agg.emit(2)
        assert out.ids.tolist() == expect
