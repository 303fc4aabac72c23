"""Clip-matching ID assignment (``docs/method.md``) on hand-computed cases.

Masks are 1x4 "images". Soft IoU = sum(a*b) / sum(a + b - a*b), computed by hand in the comments:
  A = [1, 1, 0, 0], B = [0, 0, 1, 1], C = [0, 0, 0, 1], H = [1, .5, 0, 0]
  sIoU(A, A) = 1, sIoU(A, B) = 0, sIoU(A, C) = 0, sIoU(B, C) = 1/2,
  sIoU(A, H) = (1 + .5) / (1 + 1) = 3/4, sIoU(B, H) = 0 / (2 + 1.5) = 0.
"""

import numpy as np
import pytest
import torch

from maskprop_d2.tracking import ClipTrackMatcher, assign_ids_from_scores, clip_frame_range

A = [1.0, 1.0, 0.0, 0.0]
B = [0.0, 0.0, 1.0, 1.0]
C = [0.0, 0.0, 0.0, 1.0]
H = [1.0, 0.5, 0.0, 0.0]
Z = [0.0, 0.0, 0.0, 0.0]


def clip(*tracks):
    """tracks: each a list of per-frame 1x4 masks -> tensor (N, F, 1, 4)."""
    if not tracks:
        return torch.zeros((0, 0, 1, 4))
    return torch.tensor(tracks, dtype=torch.float32)[:, :, None, :]


def empty(frames):
    return torch.zeros((0, len(frames), 1, 4))


def test_clip_frame_range():
    assert clip_frame_range(0, 2, 10) == range(0, 3)
    assert clip_frame_range(5, 2, 10) == range(3, 8)
    assert clip_frame_range(9, 2, 10) == range(7, 10)
    assert clip_frame_range(0, 6, 1) == range(0, 1)
    with pytest.raises(ValueError):
        clip_frame_range(10, 2, 10)


def test_first_clip_gets_new_ids_and_first_id():
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), clip([A, A], [B, B], [C, C])) == [0, 1, 2]
    m1 = ClipTrackMatcher(half_length=1, match_thresh=0.3, first_id=1)
    assert m1.assign(0, range(0, 2), clip([A, A], [B, B])) == [1, 2]
    assert m1.num_ids == 2


def test_q_several_tracks_per_id_and_partial_overlaps():
    """T=1: clip 0 = frames 0-1, clip 1 = frames 0-2, clip 2 = frames 1-3."""
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), clip([A, A], [B, B])) == [0, 1]
    # clip 1 vs clip 0 (overlap frames 0, 1): q(0) = 1 for the A track, q(1) = 1 for the B track.
    q, ids = m.id_scores(range(0, 3), clip([A, A, A], [B, B, B]))
    assert ids == [0, 1]
    assert q.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert m.assign(1, range(0, 3), clip([A, A, A], [B, B, B])) == [0, 1]
    # clip 2, track x = (A, H, B) at frames 1, 2, 3.
    #   vs a0 (clip 0, ID 0): overlap {1}:    m = sIoU(A, A) = 1
    #   vs a1 (clip 1, ID 0): overlap {1, 2}: m = (sIoU(A, A) + sIoU(H, A)) / 2 = (1 + 3/4)/2 = 7/8
    #   vs b0, b1 (ID 1): sIoU(A, B) = sIoU(H, B) = 0
    #   q(0) = (1 + 7/8) / 2 = 15/16, q(1) = 0 / 2 = 0
    # track z = (B, C, C):
    #   vs a0: sIoU(B, A) = 0; vs a1: (0 + sIoU(C, A)) / 2 = 0         -> q(0) = 0
    #   vs b0: sIoU(B, B) = 1; vs b1: (1 + sIoU(C, B)) / 2 = 3/4       -> q(1) = (1 + 3/4) / 2 = 7/8
    x, z = [A, H, B], [B, C, C]
    mm, tids, clip_t = m.matching_scores(range(1, 4), clip(x, z))
    assert tids.tolist() == [0, 1, 0, 1] and clip_t.tolist() == [0, 0, 1, 1]
    assert mm.tolist() == [[1.0, 0.0, 7 / 8, 0.0], [0.0, 1.0, 0.0, 3 / 4]]
    q, ids = m.id_scores(range(1, 4), clip(x, z))
    assert ids == [0, 1]
    assert q.tolist() == [[15 / 16, 0.0], [0.0, 7 / 8]]
    assert m.assign(2, range(1, 4), clip(x, z)) == [0, 1]


def test_denominator_counts_zero_score_tracks():
    """The slide's q = m/2: ID 0 is carried by two earlier tracks, one of which scores 0."""
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), clip([A, A])) == [0]
    # clip 1 track (A, C, C): vs a0 over {0, 1}: (sIoU(A, A) + sIoU(C, A)) / 2 = 1/2 > .3 -> ID 0
    assert m.assign(1, range(0, 3), clip([A, C, C])) == [0]
    # clip 2 track (A, A, A) at frames 1-3:
    #   vs a0 over {1}: sIoU(A, A) = 1;  vs a1 over {1, 2}: (sIoU(A, C) + sIoU(A, C)) / 2 = 0
    #   q(0) = (1 + 0) / 2 = 1/2 (not 1: the zero-score track counts in the denominator)
    q, ids = m.id_scores(range(1, 4), clip([A, A, A]))
    assert ids == [0] and q.tolist() == [[0.5]]
    # strictly above the threshold joins; equal to it does not
    m_eq = ClipTrackMatcher(half_length=1, match_thresh=0.5)
    m_eq.assign(0, range(0, 2), clip([A, A]))
    m_eq.assign(1, range(0, 3), clip([A, A, C]))  # (1 + 1) / 2 = 1 -> ID 0
    # vs a0 {1}: 1; vs a1 {1, 2}: (1 + 0) / 2 = 1/2; q(0) = 3/4
    assert m_eq.id_scores(range(1, 4), clip([A, A, A]))[0].tolist() == [[0.75]]
    # vs a0 {1}: sIoU(H, A) = 3/4; vs a1 {1, 2}: (3/4 + sIoU(H, C) = 0) / 2 = 3/8; q = 9/16
    assert m_eq.id_scores(range(1, 4), clip([H, H, H]))[0].tolist() == [[9 / 16]]
    # track (E, B, B), E = [1, 0, 0, 0]: vs a0 {1}: sIoU(E, A) = 1/2;
    # vs a1 {1, 2}: (sIoU(E, A) + sIoU(B, C)) / 2 = 1/2; q(0) = 1/2 == thresh -> a new ID
    E = [1.0, 0.0, 0.0, 0.0]
    assert m_eq.id_scores(range(1, 4), clip([E, B, B]))[0].tolist() == [[0.5]]
    assert m_eq.assign(2, range(1, 4), clip([E, B, B])) == [1]


def test_threshold_behaviour():
    # single earlier track; track (H, H) vs (A, A): m = 3/4
    for thresh, expected in [(0.74, [0]), (0.75, [1]), (0.9, [1]), (0.0, [0])]:
        m = ClipTrackMatcher(half_length=1, match_thresh=thresh)
        m.assign(0, range(0, 2), clip([A, A]))
        assert m.assign(1, range(0, 3), clip([H, H, H])) == expected, thresh
    # q = 0 never joins, even with threshold 0
    m = ClipTrackMatcher(half_length=1, match_thresh=0.0)
    m.assign(0, range(0, 2), clip([A, A]))
    assert m.assign(1, range(0, 3), clip([B, B, B])) == [1]


def test_id_absent_from_window_is_forgotten():
    """T=1: clip 0 (frames 0-1) overlaps clip 2 (frames 1-3) but not clip 3 (frames 2-4)."""
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), clip([A, A])) == [0]
    assert m.assign(1, range(0, 3), clip([B, B, B])) == [1]
    # clip 2 would still see ID 0 (through frame 1 only):
    q, ids = m.id_scores(range(1, 4), clip([A, A, A]))
    assert ids == [0, 1]
    # vs a0 {1}: 1 -> q(0) = 1;  vs b1 {1, 2}: 0 -> q(1) = 0
    assert q.tolist() == [[1.0, 0.0]]
    assert m.assign(2, range(1, 4), clip([B, B, B])) == [1]
    assert m.num_stored_clips == 2  # clip 0 ends at frame 1 < earliest start of clip 3 (2)
    # clip 3: ID 0 is gone from the window; only ID 1 (clips 1 and 2) is scored
    q, ids = m.id_scores(range(2, 5), clip([A, A, A]))
    assert ids == [1] and q.tolist() == [[0.0]]
    assert m.assign(3, range(2, 5), clip([A, A, A])) == [2]  # a new ID, not 0


def test_two_tracks_of_one_clip_never_share_an_id():
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), clip([A, A], [B, B])) == [0, 1]
    # u = (A, A, A): q = (1, 0).  v = (H, H, H): q(0) = 3/4, q(1) = 0. Both want ID 0:
    # assignment gives ID 0 to u (1 + 0 > 3/4 + 0), v gets a new ID (its q(1) = 0 is not eligible).
    assert m.assign(1, range(0, 3), clip([A, A, A], [H, H, H])) == [0, 2]

    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    # earlier tracks: ID 0 = (A, A), ID 1 = (C, C)
    assert m.assign(0, range(0, 2), clip([A, A], [C, C])) == [0, 1]
    # u = (H, H, H): q(0) = 3/4, q(1) = 0.  v = (A, C, C): q(0) = (1 + 0)/2 = 1/2,
    # q(1) = (sIoU(A, C) + sIoU(C, C)) / 2 = 1/2. Both prefer ID 0 (v ties; u wins it), v takes its
    # second best, ID 1.
    q, ids = m.id_scores(range(0, 3), clip([H, H, H], [A, C, C]))
    assert q.tolist() == [[0.75, 0.0], [0.5, 0.5]]
    assert m.assign(1, range(0, 3), clip([H, H, H], [A, C, C])) == [0, 1]


def test_assignment_rule_on_scores():
    # no conflict: per-track argmax
    assert assign_ids_from_scores(np.array([[0.9, 0.2], [0.1, 0.8]]), [3, 7], 0.3) == [3, 7]
    # conflict, second best eligible: the one-to-one assignment maximising the summed q
    # (0.5 + 0.8 = 1.3 beats 0.9 + new ID)
    assert assign_ids_from_scores(np.array([[0.9, 0.5], [0.8, 0.1]]), [3, 7], 0.3) == [7, 3]
    # conflict, second best not eligible -> new ID (None) for the weaker track
    assert assign_ids_from_scores(np.array([[0.9, 0.2], [0.8, 0.1]]), [3, 7], 0.3) == [3, None]
    # more tracks than IDs; nothing eligible; no IDs at all
    assert assign_ids_from_scores(np.array([[0.9], [0.8], [0.7]]), [5], 0.3) == [5, None, None]
    assert assign_ids_from_scores(np.array([[0.2, 0.1]]), [0, 1], 0.3) == [None]
    assert assign_ids_from_scores(np.zeros((2, 0)), [], 0.3) == [None, None]


def test_empty_clips_and_both_empty_masks():
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), empty(range(0, 2))) == []
    assert m.num_ids == 0
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), clip([Z, A])) == [0]
    # both masks empty in frame 0: soft IoU 1 (the project's definition).
    # (Z, H, H) vs (Z, A) over {0, 1}: (1 + 3/4) / 2 = 7/8
    q, _ = m.id_scores(range(0, 3), clip([Z, H, H]))
    assert q.tolist() == [[7 / 8]]
    assert m.assign(1, range(0, 3), empty(range(0, 3))) == []


def test_memory_is_bounded_and_ids_distinct_per_clip():
    torch.manual_seed(0)
    T, L = 2, 40
    m = ClipTrackMatcher(half_length=T, match_thresh=0.3)
    base = torch.rand(3, 1, 6, 6)
    for t in range(L):
        fr = clip_frame_range(t, T, L)
        masks = (base + 0.2 * torch.rand(3, len(fr), 6, 6)).clamp(0, 1)
        ids = m.assign(t, fr, masks)
        assert len(set(ids)) == 3
        assert m.num_stored_clips <= 2 * T
    # consistent objects keep their IDs
    assert m.num_ids == 3


def test_input_checks():
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    with pytest.raises(ValueError, match="not in its frame range"):
        m.assign(0, range(1, 3), clip([A, A]))
    with pytest.raises(ValueError, match="exceeds"):
        m.assign(1, range(0, 4), clip([A, A, A, A]))
    with pytest.raises(ValueError, match="masks must be"):
        m.assign(0, range(0, 2), clip([A, A, A]))
    m.assign(1, range(0, 3), clip([A, A, A]))
    with pytest.raises(ValueError, match="frame order"):
        m.assign(1, range(0, 3), clip([A, A, A]))
    with pytest.raises(ValueError, match="mask size"):
        m.assign(2, range(1, 4), torch.zeros(1, 3, 2, 2))


def _two_hidden_then_one_back():
    """Clip 0 (frames 0-1): tracks of class 0 and 1, visible in frame 0, hidden in frame 1.
    Clip 2 (frames 1-3): one track, hidden in frame 1 (the only frame shared with clip 0)."""
    first = torch.zeros((2, 2, 4, 4))
    first[0, 0, :, :2] = 1.0
    first[1, 0, :, 2:] = 1.0
    back = torch.zeros((1, 3, 4, 4))
    back[0, 1:, :, 2:] = 1.0
    return first, back


@pytest.mark.parametrize("cls_back, expected", [(1, 1), (0, 0)])
def test_class_breaks_a_tie_between_ids_hidden_together(cls_back, expected):
    first, back = _two_hidden_then_one_back()
    m = ClipTrackMatcher(1, 0.3)
    assert m.assign(0, range(0, 2), first, torch.tensor([0, 1])) == [0, 1]
    q, ids = m.id_scores(range(1, 4), back)
    assert ids == [0, 1] and q.tolist() == [[1.0, 1.0]]  # empty vs empty: a tie
    assert m.assign(2, range(1, 4), back, torch.tensor([cls_back])) == [expected]


def test_tie_break_never_makes_a_score_eligible_and_needs_classes_everywhere():
    # q at the threshold stays ineligible whatever the class agreement
    assert assign_ids_from_scores(np.array([[0.3]]), [5], 0.3, np.array([[1.0]])) == [None]
    # a real difference in q beats class agreement
    got = assign_ids_from_scores(np.array([[0.5, 0.6]]), [0, 1], 0.3, np.array([[1.0, 0.0]]))
    assert got == [1]
    first, back = _two_hidden_then_one_back()
    m = ClipTrackMatcher(1, 0.3)
    m.assign(0, range(0, 2), first)  # no classes stored: no tie-break later
    assert m.class_agreement(range(1, 4), torch.tensor([1]), [0, 1]) is None
    assert m.assign(2, range(1, 4), back, torch.tensor([1])) == [0]
    with pytest.raises(ValueError, match="classes"):
        ClipTrackMatcher(1, 0.3).assign(0, range(0, 2), first, torch.tensor([0]))


def test_may_start_false_only_continues_an_id():
    """A track flagged may_start=False joins a matching ID but is dropped (-1, not remembered)
    instead of starting a new one; the IDs handed out stay consecutive."""
    m = ClipTrackMatcher(half_length=1, match_thresh=0.3)
    assert m.assign(0, range(0, 2), clip([A, A]), may_start=torch.tensor([False])) == [-1]
    assert m.num_ids == 0 and m.num_stored_clips == 1
    assert m.assign(1, range(0, 3), clip([A, A, A], [B, B, B])) == [0, 1]
    # both flagged may_start=False: A continues ID 0
    out = m.assign(
        2, range(1, 4), clip([A, A, A], [H, H, H]), may_start=torch.tensor([False, False])
    )
    # A -> ID 0 (q = 1); H vs ID 0 would be 3/4 but ID 0 is taken (one-to-one) and vs ID 1 is 0:
    # H would need a new ID, so it is dropped
    assert out == [0, -1]
    assert m.num_ids == 2
    # the dropped track is not remembered: a later clip sees only IDs 0 and 1's tracks
    m_, ids, _ = m.matching_scores(range(2, 5), clip([A, A, A]))
    # stored: clip 1's two tracks + clip 2's kept one (the dropped H would make it 4)
    assert sorted(set(ids.tolist())) == [0, 1] and m_.shape[1] == 3
    assert m.assign(3, range(2, 5), clip([C, C, C]), may_start=torch.tensor([True])) == [1]
    with pytest.raises(ValueError, match="may_start"):
        m.assign(4, range(3, 5), clip([A, A]), may_start=torch.tensor([True, False]))
