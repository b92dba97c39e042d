"""Pure association, hot-start and mask rules on hand-made masks (reference §1c)."""

from __future__ import annotations

import torch

from model.nn.box_ops import masks_to_boxes
from model.video.association import (
    AssociationThresholds,
    HotStart,
    HotStartRule,
    associate,
    cap_new_detections,
    in_hotstart,
    mask_iou,
    mask_nms,
    update_hotstart,
)
from model.video.mask_rules import (
    NEVER_OCCLUDED,
    drop_sprinkles,
    fill_holes,
    hidden_by_lookalikes,
    memory_non_overlap,
    object_non_overlap,
    occlusion_suppression,
    suppress_shrunk,
)


def box_mask(x0: int, y0: int, x1: int, y1: int, size: int = 16) -> torch.Tensor:
    m = torch.zeros(size, size, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def stack(*masks: torch.Tensor) -> torch.Tensor:
    return torch.stack(masks) if masks else torch.zeros(0, 16, 16, dtype=torch.bool)


# --- IoU and NMS --------------------------------------------------------------------------------


def test_mask_iou_values_and_empty_masks() -> None:
    a = stack(box_mask(0, 0, 4, 4), torch.zeros(16, 16, dtype=torch.bool))
    b = stack(box_mask(2, 0, 6, 4), torch.zeros(16, 16, dtype=torch.bool))
    iou = mask_iou(a, b)
    assert iou.shape == (2, 2)
    assert torch.isclose(iou[0, 0], torch.tensor(8 / 24))
    assert iou[1, 1] == 0  # two empty masks: 0, not NaN
    assert mask_iou(stack(), b).shape == (0, 2)


def test_nms_keeps_best_and_suppresses_overlaps_strictly() -> None:
    masks = stack(box_mask(0, 0, 8, 8), box_mask(1, 0, 9, 8), box_mask(10, 10, 14, 14))
    keep = mask_nms(torch.tensor([0.6, 0.9, 0.7]), masks, iou_threshold=0.1)
    assert keep.tolist() == [False, True, True]
    # IoU exactly at the threshold is kept (strict >)
    half = stack(box_mask(0, 0, 4, 4), box_mask(2, 0, 6, 4))  # IoU 1/3
    assert mask_nms(torch.tensor([0.9, 0.8]), half, iou_threshold=1 / 3).tolist() == [True, True]


def test_nms_ties_prefer_lower_index_and_empty_input() -> None:
    masks = stack(box_mask(0, 0, 8, 8), box_mask(0, 0, 8, 8))
    assert mask_nms(torch.tensor([0.5, 0.5]), masks, 0.1).tolist() == [True, False]
    assert mask_nms(torch.zeros(0), stack(), 0.1).tolist() == []


# --- association --------------------------------------------------------------------------------

T = AssociationThresholds()


def test_associate_official_rules() -> None:
    trk = stack(box_mask(0, 0, 8, 8), box_mask(8, 8, 16, 16), torch.zeros(16, 16, dtype=torch.bool))
    det = stack(
        box_mask(0, 0, 8, 8),  # exact match of track 0, confident -> recondition pair
        box_mask(12, 12, 16, 16),  # IoU 0.25 with track 1: matches (>= 0.1) but not >= 0.5
        box_mask(0, 10, 4, 14),  # nothing there: new if prob >= 0.7
        box_mask(10, 0, 14, 4),  # nothing there but prob below 0.7: not new
    )
    scores = torch.tensor([0.9, 0.9, 0.75, 0.6])
    a = associate(
        det, scores, torch.zeros(4, dtype=torch.long), trk, torch.zeros(3, dtype=torch.long), T
    )
    assert a.new_dets == (2,)
    assert a.trk_matched.tolist() == [True, False, False]
    assert a.trk_unmatched.tolist() == [False, True, False]
    assert a.trk_empty.tolist() == [False, False, True]
    assert a.det_to_trks == ((0,), (1,), (), ())
    assert dict(a.recondition) == {0: 0}


def test_associate_never_crosses_concepts() -> None:
    trk = stack(box_mask(0, 0, 8, 8))
    det = stack(box_mask(0, 0, 8, 8))
    a = associate(det, torch.tensor([0.9]), torch.tensor([1]), trk, torch.tensor([0]), T)
    assert a.new_dets == (0,)  # same pixels, other concept: a new object of concept 1
    assert a.trk_unmatched.tolist() == [True]


def test_associate_many_to_one_and_last_detection_wins_recondition() -> None:
    trk = stack(box_mask(0, 0, 8, 8), box_mask(0, 0, 8, 7))
    det = stack(box_mask(0, 0, 8, 8), box_mask(0, 0, 8, 8))
    a = associate(
        det,
        torch.tensor([0.95, 0.9]),
        torch.zeros(2, dtype=torch.long),
        trk,
        torch.zeros(2, dtype=torch.long),
        T,
    )
    assert a.det_to_trks == ((0, 1), (0, 1))  # one detection may match several tracks
    assert dict(a.recondition) == {0: 1}


def test_associate_empty_sides() -> None:
    det = stack(box_mask(0, 0, 4, 4), box_mask(5, 5, 9, 9))
    no_trk = stack()
    a = associate(
        det,
        torch.tensor([0.8, 0.5]),
        torch.zeros(2, dtype=torch.long),
        no_trk,
        torch.zeros(0, dtype=torch.long),
        T,
    )
    assert a.new_dets == (0,)
    assert a.det_to_trks == ((), ())
    trk = stack(box_mask(0, 0, 4, 4), torch.zeros(16, 16, dtype=torch.bool))
    b = associate(
        stack(),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        trk,
        torch.zeros(2, dtype=torch.long),
        T,
    )
    assert b.trk_unmatched.tolist() == [True, False]
    assert b.trk_empty.tolist() == [False, True]
    assert b.new_dets == ()


def test_cap_new_detections_keeps_best_scores() -> None:
    scores = torch.tensor([0.7, 0.9, 0.8, 0.9])
    assert cap_new_detections((0, 1, 2, 3), scores, room=10) == (0, 1, 2, 3)
    assert cap_new_detections((0, 1, 2, 3), scores, room=2) == (1, 3)  # tie: lower index first
    assert cap_new_detections((0, 1), scores, room=0) == ()


# --- hot-start ----------------------------------------------------------------------------------

RULE = HotStartRule(delay=15, unmatch_thresh=8, dup_thresh=8)


def test_hotstart_removes_after_eight_unmatched_frames_in_window() -> None:
    windows = {5: HotStart(first_frame=0)}
    removed_at = None
    for frame in range(1, 15):
        up = update_hotstart(windows, {5: 0}, frame, unmatched_ids=[5], det_to_ids=[], rule=RULE)
        windows = up.windows
        if up.removed:
            removed_at = frame
            assert up.removed == {5}
            break
    assert removed_at == 8


def test_hotstart_window_closes_and_object_is_safe() -> None:
    windows = {1: HotStart(first_frame=0)}
    for frame in range(0, 15):
        unmatched = [1] if frame % 2 else []  # 7 unmatched frames inside the window
        up = update_hotstart(windows, {1: 0}, frame, unmatched, [], RULE)
        assert not up.removed
        windows = up.windows
    assert windows == {}  # past the window: counters dropped, never removed
    assert in_hotstart(0, 14, 15) and not in_hotstart(0, 15, 15)


def test_hotstart_duplicates_remove_the_younger_object() -> None:
    first_frames = {1: 0, 2: 3}
    windows = {1: HotStart(first_frame=0), 2: HotStart(first_frame=3)}
    removed: frozenset[int] = frozenset()
    for frame in range(3, 11):
        up = update_hotstart(windows, first_frames, frame, [], det_to_ids=[(1, 2)], rule=RULE)
        windows, removed = up.windows, up.removed
        if removed:
            break
    assert removed == {2} and frame == 10  # 8 shared frames; the older object stays
    assert 1 in windows


def test_hotstart_ties_on_first_frame_blame_the_higher_id() -> None:
    windows = {3: HotStart(first_frame=0), 4: HotStart(first_frame=0)}
    up = update_hotstart(windows, {3: 0, 4: 0}, 0, [], [(4, 3)], RULE)
    assert dict(up.windows[4].shared_with) == {3: 1}
    assert dict(up.windows[3].shared_with) == {}


# --- mask rules ---------------------------------------------------------------------------------


def test_occlusion_suppression_picks_most_recently_occluded() -> None:
    masks = stack(box_mask(0, 0, 8, 8), box_mask(0, 0, 8, 8), box_mask(10, 10, 12, 12))
    groups = torch.zeros(3, dtype=torch.long)
    last = torch.tensor([5, 9, 1])
    assert occlusion_suppression(masks, last, groups, 0.7).tolist() == [False, True, False]
    # never occluded (-1) on the other side: nobody is suppressed; equal frames: nobody either
    assert not occlusion_suppression(masks, torch.tensor([NEVER_OCCLUDED, 9, 1]), groups, 0.7).any()
    assert not occlusion_suppression(masks, torch.tensor([4, 4, 1]), groups, 0.7).any()
    # other concept: no suppression
    assert not occlusion_suppression(masks, last, torch.tensor([0, 1, 0]), 0.7).any()


def test_hidden_by_lookalikes_needs_cover_by_other_objects_of_the_concept() -> None:
    empty = torch.zeros(16, 16, dtype=torch.bool)
    # object 0 was seen at (2..6); now its own mask is gone and object 1 has swelled over it;
    # object 2 was never seen; object 1 covers itself, which does not count
    last = stack(box_mask(2, 2, 6, 6), box_mask(0, 0, 8, 8), empty)
    now = stack(empty, box_mask(0, 0, 8, 8), empty)
    groups = torch.zeros(3, dtype=torch.long)
    assert hidden_by_lookalikes(last, now, groups, 0.5).tolist() == [True, False, False]
    # an object of another concept hides nothing
    assert not hidden_by_lookalikes(last, now, torch.tensor([0, 1, 0]), 0.5).any()
    # half covered: hidden at cover 0.5, not at 0.6
    last = stack(box_mask(4, 0, 12, 8), empty)
    now = stack(empty, box_mask(0, 0, 8, 8))
    two = torch.zeros(2, dtype=torch.long)
    assert hidden_by_lookalikes(last, now, two, 0.5).tolist() == [True, False]
    assert hidden_by_lookalikes(last, now, two, 0.6).tolist() == [False, False]


def test_suppress_shrunk_removes_whole_objects_only() -> None:
    big = torch.where(box_mask(0, 0, 8, 8), 5.0, -5.0)
    inside = torch.where(box_mask(1, 1, 4, 4), 1.0, -5.0)  # loses every pixel to `big`
    far = torch.where(box_mask(10, 10, 14, 14), 1.0, -5.0)
    out = suppress_shrunk(torch.stack([big, inside, far]), torch.zeros(3, dtype=torch.long), 0.3)
    assert torch.equal(out[0], big) and torch.equal(out[2], far)
    assert (out[1] <= -10).all()
    # different concepts do not compete
    out = suppress_shrunk(torch.stack([big, inside]), torch.tensor([0, 1]), 0.3)
    assert torch.equal(out[1], inside)


def test_memory_non_overlap_leaves_contested_pixels_to_the_highest_logit() -> None:
    swollen = torch.where(box_mask(0, 0, 8, 8), 2.0, -5.0)  # swelled over its neighbour
    neighbour = torch.where(box_mask(4, 4, 10, 10), 4.0, -5.0)
    out = memory_non_overlap(torch.stack([swollen, neighbour]), torch.zeros(2, dtype=torch.long))
    assert torch.equal(out[1] > 0, neighbour > 0)  # it wins every pixel it covers
    assert torch.equal(out[0] > 0, box_mask(0, 0, 8, 8) & ~box_mask(4, 4, 10, 10))
    assert (out[0][box_mask(4, 4, 8, 8)] <= -10).all()
    # different concepts do not compete; one object is left alone
    both = torch.stack([swollen, neighbour])
    assert torch.equal(memory_non_overlap(both, torch.tensor([0, 1])), both)
    assert torch.equal(memory_non_overlap(swollen[None], torch.zeros(1)), swollen[None])


def test_object_non_overlap_gives_pixels_to_higher_score() -> None:
    masks = stack(box_mask(0, 0, 8, 8), box_mask(4, 0, 12, 8))
    out = object_non_overlap(masks, torch.tensor([0.4, 0.9]), torch.zeros(2, dtype=torch.long))
    assert not (out[0] & out[1]).any()
    assert out[1].sum() == 64 and out[0].sum() == 32
    same = object_non_overlap(masks, torch.tensor([0.5, 0.5]), torch.zeros(2, dtype=torch.long))
    assert same[0].sum() == 64  # tie: lower index keeps the pixels


def test_fill_holes_and_sprinkles() -> None:
    logits = torch.where(box_mask(2, 2, 12, 12), 3.0, -3.0)
    logits[6, 6] = -3.0  # a 1-pixel hole
    logits[0, 15] = 3.0  # a 1-pixel sprinkle
    out = fill_holes(logits[None], max_area=16)[0]
    assert out[6, 6] == 0.1 and out[0, 15] == -0.1
    assert out[3, 3] == 3.0
    tiny = torch.full((1, 16, 16), -3.0)
    tiny[0, 5, 5] = 3.0  # a whole 1-pixel object is not a sprinkle (area // 2 == 0)
    assert torch.equal(fill_holes(tiny, 16), tiny)
    assert torch.equal(fill_holes(logits[None], 0), logits[None])
    assert fill_holes(torch.zeros(0, 16, 16), 16).shape == (0, 16, 16)


def test_drop_sprinkles_keeps_the_object_and_its_box() -> None:
    masks = stack(box_mask(2, 2, 6, 6), box_mask(8, 8, 10, 9), box_mask(0, 0, 1, 1))
    masks[0, 15, 15] = True  # a stray pixel would stretch the box to the corner
    masks[1, 0, 0] = masks[1, 0, 1] = True  # two parts of 2 pixels: the largest never goes
    out = drop_sprinkles(masks, max_area=16)
    assert torch.equal(masks_to_boxes(out[:1]), masks_to_boxes(box_mask(2, 2, 6, 6)[None]))
    assert torch.equal(out[1], masks[1])
    assert torch.equal(out[2], masks[2])  # a whole 1-pixel object is kept
    assert torch.equal(drop_sprinkles(masks, 0), masks)
    assert drop_sprinkles(stack(), 16).shape == (0, 16, 16)
