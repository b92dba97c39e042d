"""model/video/reassociation.py: pairing would-be new detections with lost objects."""

from __future__ import annotations

import torch

from model.video.reassociation import (
    Anchor,
    crossed_pairs,
    reanchor,
    reassociate,
    swallowed_detections,
)


def square(x0: int, y0: int, size: int = 4, grid: int = 32) -> torch.Tensor:
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


def test_mask_iou_pairs_greedily_within_a_concept() -> None:
    dets = torch.stack([square(0, 0), square(10, 10), square(20, 20)])
    groups = torch.tensor([0, 0, 1])
    lost = torch.stack([square(11, 10), square(20, 20), square(1, 0)])
    pairs = reassociate(dets, groups, [0, 1, 2], lost, [0, 0, 1], min_iou=0.1)
    # object 0 <- detection 1 (same concept, overlapping); object 2 (concept 1) overlaps
    # detection 0 of concept 0 only; object 1 (concept 0) sits on detection 2 of concept 1
    assert pairs == {0: 1}


def test_only_would_be_new_detections_are_given_away() -> None:
    dets = torch.stack([square(0, 0), square(10, 10)])
    lost = torch.stack([square(0, 0)])
    assert reassociate(dets, torch.tensor([0, 0]), [1], lost, [0], min_iou=0.1) == {}
    assert reassociate(dets, torch.tensor([0, 0]), [], lost, [0], min_iou=0.1) == {}


def box(x0: float, y0: float, size: float = 4) -> torch.Tensor:
    return torch.tensor([x0, y0, x0 + size, y0 + size])


def test_anchor_learns_the_objects_velocity_and_carries_its_box_along() -> None:
    anchor = Anchor(0, box(0, 0))
    assert anchor.expected_box(5).tolist() == box(0, 0).tolist()  # one sighting: no motion yet
    anchor = anchor.moved_to(2, box(4, 2))  # 2 px / frame right, 1 down
    assert anchor.velocity.tolist() == [2.0, 1.0]
    assert anchor.expected_box(5).tolist() == box(10, 5).tolist()
    anchor = anchor.moved_to(3, box(4, 2))  # stopped: the estimate halves
    assert anchor.velocity.tolist() == [1.0, 0.5]


def test_a_sighting_of_unlikely_size_carries_the_anchor_along_until_it_persists() -> None:
    anchor = Anchor(0, box(0, 0)).moved_to(1, box(1, 0))  # 1 px / frame right
    merged = box(0, 0, size=10)  # the object and a neighbour in one box
    for frame in (2, 3, 4):
        anchor = anchor.sighted(frame, merged)
        assert anchor.box.tolist() == box(frame, 0).tolist()  # where it should be
        assert anchor.velocity.tolist() == [1.0, 0.0]
    anchor = anchor.sighted(5, merged)  # the fourth in a row: it really is that large now
    assert anchor.box.tolist() == merged.tolist()
    assert anchor.sighted(6, box(0, 0, size=11)).odd_sightings == 0  # a likely size again


def test_reanchor_finds_a_moving_object_where_it_should_be_now() -> None:
    dets = torch.stack([square(12, 0)])  # 12 frames later, at 1 px / frame
    still = {0: Anchor(0, box(0, 0))}
    moving = {0: Anchor(0, box(-1, 0)).moved_to(1, box(0, 0))}
    args = (torch.tensor([0]), [0], 1.0, 0.0)
    assert reanchor(still, {0: 0}, 12, dets, *args) == {}
    assert reanchor(moving, {0: 0}, 12, dets, *args) == {0: 0}
    assert reanchor(moving, {0: 1}, 12, dets, *args) == {}  # another concept


def test_the_reach_grows_with_the_frames_since_the_last_match_up_to_its_cap() -> None:
    still = {0: Anchor(0, box(0, 0))}  # 4-pixel object; a look-alike 16 pixels (4 sizes) away
    far = torch.stack([square(16, 0)])
    grows = (torch.tensor([0]), [0], 1.0, 0.25)
    assert reanchor(still, {0: 0}, 12, far, *grows) == {}  # 1 + 0.25 x 11 = 3.75 sizes
    assert reanchor(still, {0: 0}, 14, far, *grows) == {0: 0}  # 4.25 sizes
    assert reanchor(still, {0: 0}, 60, far, *grows, 3.0) == {}  # capped at 3 sizes
    assert reanchor(still, {0: 0}, 60, torch.stack([square(12, 0)]), *grows, 3.0) == {0: 0}


def test_reanchor_also_looks_where_the_object_was_last_matched() -> None:
    """It may have stopped: a detection on the last matched box is near however fast the object
    moved before."""
    fast = {0: Anchor(0, box(-2, 0)).moved_to(1, box(0, 0))}  # 2 px / frame
    there = torch.stack([square(0, 0)])  # still where it was last matched, 11 frames on
    ahead = torch.stack([square(22, 0)])  # where it would be had it kept going
    between = torch.stack([square(11, 0)])  # neither
    args = (torch.tensor([0]), [0], 1.0, 0.0)
    assert reanchor(fast, {0: 0}, 12, there, *args) == {0: 0}
    assert reanchor(fast, {0: 0}, 12, ahead, *args) == {0: 0}
    assert reanchor(fast, {0: 0}, 12, between, *args) == {}


def test_reanchor_reach_grows_with_the_time_since_the_last_match() -> None:
    still = {0: Anchor(0, box(0, 0))}
    near = torch.stack([square(4, 0)])  # one object size away
    far = torch.stack([square(8, 0)])  # two sizes away
    assert reanchor(still, {0: 0}, 1, near, torch.tensor([0]), [0], 1.0, 0.1) == {0: 0}
    assert reanchor(still, {0: 0}, 1, near, torch.tensor([0]), [0], 0.5, 0.1) == {}
    assert reanchor(still, {0: 0}, 1, far, torch.tensor([0]), [0], 1.0, 0.1) == {}
    assert reanchor(still, {0: 0}, 11, far, torch.tensor([0]), [0], 1.0, 0.1) == {0: 0}


def test_reanchor_wants_a_similar_size_or_a_merge_and_takes_the_nearest() -> None:
    still = {0: Anchor(0, box(8, 8))}
    args = (torch.tensor([0]), [0], 1.0, 0.0)
    merged = torch.stack([square(6, 6, size=9)])  # over twice as large, holding the object
    assert reanchor(still, {0: 0}, 1, merged, *args) == {0: 0}
    beside = torch.stack([square(10, 10, size=9)])  # as large, holding a corner of it only
    assert reanchor(still, {0: 0}, 1, beside, *args) == {}
    huge = torch.stack([square(2, 2, size=14)])  # holding it, but too large to be a merge
    assert reanchor(still, {0: 0}, 1, huge, *args) == {}
    two = torch.stack([square(11, 8), square(9, 8)])
    assert reanchor(still, {0: 0}, 1, two, torch.tensor([0, 0]), [0, 1], 1.0, 0.0) == {0: 1}


def test_swallowed_detections_overlap_swollen_masks_only() -> None:
    ious = torch.tensor(
        [
            [0.3, 0.0, 0.0, 0.0],  # inside lost object 0's swollen mask: swallowed
            [0.3, 0.2, 0.0, 0.0],  # also overlaps object 1, not lost, and its best detection
            [0.0, 0.0, 0.0, 0.0],  # overlaps nothing: a would-be new detection, not swallowed
            [0.0, 0.0, 0.4, 0.0],  # inside lost object 2, but not confident
            [0.0, 0.0, 0.0, 0.7],  # matches object 3
            [0.0, 0.0, 0.0, 0.2],  # inside object 3's mask, swollen from its own detection
        ]
    )
    confident = torch.tensor([True, True, True, False, True, True])
    assert swallowed_detections(ious, confident, [0, 2], 0.5, 0.1) == [0, 5]
    # object 0 not lost: detection 0 is its best one (a tie goes to the first), so its own
    assert swallowed_detections(ious, confident, [], 0.5, 0.1) == [5]
    assert swallowed_detections(ious[:, :0], confident, [], 0.5, 0.1) == []


def test_each_detection_and_object_is_used_once() -> None:
    dets = torch.stack([square(0, 0), square(1, 0)])
    lost = torch.stack([square(0, 0), square(2, 0)])
    pairs = reassociate(dets, torch.tensor([0, 0]), [0, 1], lost, [0, 0], min_iou=0.1)
    assert pairs == {0: 0, 1: 1}


def test_look_alikes_whose_detections_fit_each_others_motion_crossed() -> None:
    """Object 0 moves right along y = 0, object 1 left along y = 6; on frame 3 each matched the
    detection where the other should be."""
    right = Anchor(0, box(0, 0)).moved_to(1, box(2, 0))  # 2 px / frame
    left = Anchor(0, box(20, 6)).moved_to(1, box(18, 6))
    anchors, reach = [right, left], (1.0, 0.25, 3.0)
    traded = torch.stack([box(14, 6), box(6, 0)])  # (box of object 0, box of object 1)
    kept = torch.stack([box(6, 0), box(14, 6)])
    assert crossed_pairs(anchors, 3, traded, [0, 0], 1.0, reach) == [(0, 1)]
    assert crossed_pairs(anchors, 3, kept, [0, 0], 1.0, reach) == []
    assert crossed_pairs(anchors, 3, traded, [0, 1], 1.0, reach) == []  # two concepts
    assert crossed_pairs(anchors, 3, traded, [0, 0], 9.0, reach) == []  # gain under the margin
    # a third object elsewhere changes nothing; each object is in one pair at most
    still = Anchor(0, box(0, 20))
    three = torch.stack([box(14, 6), box(6, 0), box(0, 20)])
    assert crossed_pairs([right, left, still], 3, three, [0, 0, 0], 1.0, reach) == [(0, 1)]


def test_a_trade_that_fits_the_motions_only_slightly_better_is_no_crossing() -> None:
    """Two look-alikes side by side, each detection a little off: not evidence of a trade."""
    a, b = Anchor(0, box(0, 0)), Anchor(0, box(5, 0))
    boxes = torch.stack([box(3, 0), box(2, 0)])  # both near the middle
    assert crossed_pairs([a, b], 1, boxes, [0, 0], 0.5, (1.0, 0.25, 3.0)) == []
