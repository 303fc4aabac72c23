"""Re-identification memory (ReIDMemory) in MaskProp's clip matching (ClipTrackAggregator)."""

import pytest
import torch

from maskprop_d2.tracking import ClipTrackAggregator, FrameGeometry, MaskPropTracker
from maskprop_d2.tracking.reid_memory import ReIDFeatures, ReIDMemory
from tests.video_helpers import drifting_video, tiny_video_model

H, W, T = 12, 16, 1


def _mask(col):
    m = torch.zeros(H, W)
    m[3:7, col : col + 3] = 1.0
    return m


def _run(objects, length, reid, T=T, still=False, outputs=None):
    """Stream clip tracks of ``objects``: {name: (embedding (D,), class, {frame: column})}; an
    object is detected at the frames of its dict and hidden (no detection, empty mask) elsewhere.
    ``still``: every clip track keeps its centre frame's column (a propagation that missed the
    motion). Returns {name: [ID at each detected frame]}; ``outputs`` (a dict) collects the
    emitted FrameOutputs by frame."""
    agg = ClipTrackAggregator(T, 0.3, 0.5, 3, reid=reid)
    for f in range(length):
        agg.set_geometry(f, FrameGeometry((H, W), (H, W)))
    seen = {name: [] for name in objects}
    for t in range(length):
        frames = range(max(0, t - T), min(length, t + T + 1))
        present = [n for n, (_, _, cols) in objects.items() if t in cols]
        tracks = torch.stack([
            torch.stack([_mask(objects[n][2][t if still else f]) if f in objects[n][2]
                         else torch.zeros(H, W) for f in frames]) for n in present
        ]) if present else torch.zeros((0, len(frames), H, W))  # fmt: skip
        classes = torch.tensor([objects[n][1] for n in present], dtype=torch.long)
        emb = torch.stack([objects[n][0] for n in present]) if present else torch.zeros(0, 4)
        boxes = torch.tensor([[objects[n][2][t], 3, objects[n][2][t] + 3, 7] for n in present],
                             dtype=torch.float).reshape(-1, 4)  # fmt: skip
        feats = ReIDFeatures.from_boxes(emb, classes, boxes, (H, W))
        ids = agg.add_clip(t, frames, tracks, classes, torch.full((len(present),), 0.9),
                           reid_features=feats)  # fmt: skip
        for n, y in zip(present, ids, strict=True):
            seen[n].append(y)
        if t - T >= 0:
            out = agg.emit(t - T)
            if outputs is not None:
                outputs[t - T] = out
    return seen, agg


def _hidden(cols_before, cols_after, hide):
    """Frames 0..4 at cols_before, hidden for `hide` frames, then 5 frames at cols_after."""
    out = {f: cols_before for f in range(5)}
    out.update({f: cols_after for f in range(5 + hide, 10 + hide)})
    return out


def test_object_hidden_for_3T_frames_keeps_its_id_only_with_the_memory():
    obj = {"a": (torch.tensor([1.0, 0, 0, 0]), 0, _hidden(2, 4, 3 * T + 1))}
    without, _ = _run(obj, 10 + 3 * T + 1, None)
    assert len(set(without["a"])) == 2  # back under a new ID: the clips no longer overlap
    with_memory, _ = _run(obj, 10 + 3 * T + 1, ReIDMemory(max_gap=30))
    assert set(with_memory["a"]) == {0}


def test_similar_objects_swapping_places_while_hidden_keep_their_own_ids():
    """Same class, swapped positions, different appearance: appearance decides."""
    objs = {
        "a": (torch.tensor([1.0, 0.1, 0, 0]), 1, _hidden(1, 11, 4)),
        "b": (torch.tensor([0.1, 1.0, 0, 0]), 1, _hidden(11, 1, 4)),
    }
    seen, _ = _run(objs, 14, ReIDMemory(max_gap=30))
    assert len(set(seen["a"])) == 1 and len(set(seen["b"])) == 1
    assert seen["a"][0] != seen["b"][0]


def test_window_ids_let_an_object_whose_masks_jumped_keep_its_id():
    """The object jumps 8 px between frames 4 and 5 (no mask overlap with its own ID, which is
    still in the clip matching's window): only REID.WINDOW_IDS lets the memory give it back; an
    unlike object appearing there still gets a new ID."""
    cols = {f: 2 if f < 5 else 10 for f in range(10)}
    obj = {"a": (torch.tensor([1.0, 0, 0, 0]), 0, cols)}
    default, _ = _run(obj, 10, ReIDMemory(max_gap=30), still=True)
    assert len(set(default["a"])) == 2
    window, _ = _run(obj, 10, ReIDMemory(max_gap=30, window_ids=True), still=True)
    assert set(window["a"]) == {0}
    objs = {"a": (torch.tensor([1.0, 0, 0, 0]), 0, {f: 2 for f in range(5)}),
            "b": (torch.tensor([0, 1.0, 0, 0]), 2, {f: 10 for f in range(5, 10)})}  # fmt: skip
    seen, _ = _run(objs, 10, ReIDMemory(max_gap=30, window_ids=True), still=True)
    assert seen["a"][0] != seen["b"][0]


def test_a_window_id_track_replaces_the_ids_disagreeing_masks_from_its_centre_on():
    """The jump of the test above, last seen at frame 5, with the paper's equal-weight mean: at
    frame 5 the ID's clip-4 track (still at column 2) and the re-identified clip-5 track (column
    10) would average to 0.5 each and vanish. The re-identified track replaces the earlier tracks
    from frame 5 on, and before 5 the ID keeps its own masks."""
    cols = {f: 2 if f < 5 else 10 for f in range(6)}
    outs = {}
    seen, _ = _run({"a": (torch.tensor([1.0, 0, 0, 0]), 0, cols)}, 10,
                   ReIDMemory(max_gap=30, window_ids=True), still=True, outputs=outs)  # fmt: skip
    assert set(seen["a"]) == {0}
    for f in range(6):
        assert outs[f].ids.tolist() == [0], f
        assert torch.equal(outs[f].masks[0], _mask(cols[f]) > 0.5), f
    assert all(len(outs[f].ids) == 0 for f in (6, 7, 8))


def test_memory_forgets_beyond_max_gap_and_unlike_objects():
    obj = {"a": (torch.tensor([1.0, 0, 0, 0]), 0, _hidden(2, 2, 20))}
    seen, _ = _run(obj, 30, ReIDMemory(max_gap=10))
    assert len(set(seen["a"])) == 2  # gap 20 > MAX_GAP 10: a new ID
    # another class and an orthogonal appearance at the same place is not re-identified
    objs = {"a": (torch.tensor([1.0, 0, 0, 0]), 0, {f: 2 for f in range(5)}),
            "b": (torch.tensor([0, 1.0, 0, 0]), 2, {f: 2 for f in range(9, 14)})}  # fmt: skip
    seen, _ = _run(objs, 14, ReIDMemory(max_gap=30))
    assert seen["a"][0] != seen["b"][0]


def test_memory_stays_bounded_over_a_long_stream():
    """2,000 frames, a new short-lived object every 5 frames: at most `capacity` IDs kept, and
    only those seen within `max_gap` frames."""
    g = torch.Generator().manual_seed(0)
    objs = {}
    for k in range(400):
        cols = {f: (k * 3) % 12 for f in range(5 * k, 5 * k + 3)}
        objs[k] = (torch.randn(4, generator=g), k % 3, cols)
    mem = ReIDMemory(max_gap=40, capacity=6)
    _, agg = _run(objs, 2000, mem)
    assert 0 < len(mem) <= 6
    assert agg.num_stored_clips <= 2 * T


def test_memory_validation():
    with pytest.raises(ValueError, match="max_gap"):
        ReIDMemory(max_gap=0)


def test_tracker_with_the_memory_streams_one_backbone_pass_per_frame():
    cfg, model = tiny_video_model("MODEL.MASKPROP.INFERENCE.REID.ENABLED", True,
                                  "INPUT.CLIP.HALF_LENGTH", 1)  # fmt: skip
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    tracker = MaskPropTracker(cfg, model)
    assert tracker.reid is not None
    outs = list(tracker.stream(drifting_video(6)))
    assert [o.frame_idx for o in outs] == list(range(6)) and len(calls) == 6
    assert 0 < len(tracker.reid) <= tracker.reid.capacity
    with pytest.raises(ValueError, match="tracking head"):
        MaskPropTracker(cfg, model, half_length=1, reid=ReIDMemory(),
                        reid_embedding="track_head")  # fmt: skip
