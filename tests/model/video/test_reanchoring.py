"""The loop's re-anchoring step: which objects a frame's detections confirm."""

from __future__ import annotations

from dataclasses import replace

import torch

from model.config import VideoConfig
from model.tracker.memory_bank import MemoryBank, MemoryCaps
from model.video.association import Association, AssociationThresholds, associate
from model.video.lifecycle import Track
from model.video.reanchoring import untangle, update_anchors
from model.video.reassociation import Anchor


def square(x0: int, y0: int, size: int = 6, grid: int = 32) -> torch.Tensor:
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


def track(object_id: int, x0: float) -> Track:
    anchor = Anchor(0, torch.tensor([x0, 10.0, x0 + 6, 16.0]), torch.tensor([1.0, 0.0]))
    return Track(object_id, 0, 0, 0.9, MemoryBank(MemoryCaps()), 0.0, anchor=anchor)


def test_a_detection_confirms_only_the_object_it_overlaps_best() -> None:
    # object 1's track slid onto object 0: both tracks overlap the one detection there, object
    # 0's better; object 1 itself is detected elsewhere (a would-be new detection)
    tracks = [track(0, 10), track(1, 20)]
    trk_masks = torch.stack([square(12, 10), square(13, 10)])
    det_masks = torch.stack([square(12, 10), square(22, 10)])
    groups = torch.zeros(2, dtype=torch.long)
    assoc = associate(
        det_masks, torch.tensor([0.9, 0.9]), groups, trk_masks, groups, AssociationThresholds()
    )
    assert assoc.trk_matched.tolist() == [True, True]  # both match the first detection

    update_anchors(tracks, assoc, det_masks, groups, 2, min_iou=0.5)

    assert tracks[0].anchor is not None and tracks[0].anchor.frame == 2
    assert tracks[0].anchor.box.tolist() == [12.0, 10.0, 18.0, 16.0]
    assert tracks[1].anchor is not None and tracks[1].anchor.frame == 0  # kept: not confirmed
    assert tracks[1].anchor.box.tolist() == [20.0, 10.0, 26.0, 16.0]


def test_every_object_with_its_own_detection_is_confirmed() -> None:
    tracks = [track(0, 10), track(1, 20)]
    masks = torch.stack([square(12, 10), square(22, 10)])
    groups = torch.zeros(2, dtype=torch.long)
    assoc = associate(
        masks, torch.tensor([0.9, 0.9]), groups, masks, groups, AssociationThresholds()
    )

    update_anchors(tracks, assoc, masks, groups, 2, min_iou=0.5)

    assert [t.anchor.frame for t in tracks if t.anchor is not None] == [2, 2]
    assert [t.anchor.box[0].item() for t in tracks if t.anchor is not None] == [12.0, 22.0]


def test_a_detection_far_from_where_the_object_should_be_does_not_confirm_it() -> None:
    # the object moves right at 1 pixel per frame and should be at x = 12 on frame 2; its track
    # jumped onto a look-alike at x = 27 (2.5 object sizes away) that the detector finds too
    groups = torch.zeros(1, dtype=torch.long)

    def matched_at(x0: int) -> tuple[Association, torch.Tensor]:
        masks = torch.stack([square(x0, 10)])
        scores = torch.tensor([0.6])
        return associate(masks, scores, groups, masks, groups, AssociationThresholds()), masks

    far, near = matched_at(27), matched_at(13)
    jumped, anywhere, followed = track(0, 10), track(0, 10), track(0, 10)
    update_anchors([jumped], *far, groups, 2, min_iou=0.5, reach=(1.0, 0.25, 3.0))
    update_anchors([anywhere], *far, groups, 2, min_iou=0.5)  # without a reach: any match
    update_anchors([followed], *near, groups, 2, min_iou=0.5, reach=(1.0, 0.25, 3.0))

    assert jumped.anchor is not None and jumped.anchor.frame == 0  # not confirmed
    assert anywhere.anchor is not None and anywhere.anchor.frame == 2
    assert followed.anchor is not None and followed.anchor.frame == 2


SURE = torch.tensor([True, True])  # both detections confident


def test_tracks_that_traded_look_alikes_trade_their_memories_back() -> None:
    # object 0 moves right at 1 px / frame along y = 10, object 1 left along y = 18; on frame 2
    # each track holds the other object (their memories followed the wrong one)
    tracks = [track(0, 10), track(1, 20)]
    tracks[1].anchor = Anchor(0, torch.tensor([20.0, 18.0, 26.0, 24.0]), torch.tensor([-1.0, 0]))
    banks = [tr.bank for tr in tracks]
    det_masks = torch.stack([square(12, 10), square(18, 18)])
    trk_masks = det_masks.flip(0)
    groups = torch.zeros(2, dtype=torch.long)
    assoc = associate(
        det_masks, torch.tensor([0.9, 0.9]), groups, trk_masks, groups, AssociationThresholds()
    )
    cfg = VideoConfig(reanchor_after=1, untangle_margin=1.0)

    assert (
        untangle(replace(cfg, untangle_margin=9.0), tracks, 2, assoc, det_masks, groups, SURE, [])
        is None
    )
    assert [tr.bank for tr in tracks] == banks
    assert untangle(cfg, tracks, 2, assoc, det_masks, groups, SURE, []) == [1, 0]
    assert [tr.bank for tr in tracks] == banks[::-1]  # memories traded, identities kept
    assert [tr.object_id for tr in tracks] == [0, 1]
    assert [tr.anchor.frame for tr in tracks if tr.anchor is not None] == [0, 0]

    # untraded tracks stay as they are
    kept = associate(
        det_masks, torch.tensor([0.9, 0.9]), groups, det_masks, groups, AssociationThresholds()
    )
    assert untangle(cfg, tracks, 2, kept, det_masks, groups, SURE, []) is None


def test_a_lost_track_trades_with_one_that_took_its_object() -> None:
    # object 1's track slid onto object 0 and matches its detection; object 0's track lost it
    # (empty mask), and object 1 itself is a would-be new detection where it should be
    tracks = [track(0, 10), track(1, 20)]
    tracks[1].anchor = Anchor(0, torch.tensor([20.0, 18.0, 26.0, 24.0]), torch.tensor([-1.0, 0]))
    det_masks = torch.stack([square(12, 10), square(18, 18)])
    trk_masks = torch.stack([torch.zeros(32, 32, dtype=torch.bool), square(12, 10)])
    groups = torch.zeros(2, dtype=torch.long)
    assoc = associate(
        det_masks, torch.tensor([0.9, 0.9]), groups, trk_masks, groups, AssociationThresholds()
    )
    assert assoc.new_dets == (1,)
    cfg = VideoConfig(reanchor_after=1, untangle_margin=1.0)
    assert untangle(cfg, tracks, 2, assoc, det_masks, groups, SURE, []) is None  # no candidate
    assert untangle(cfg, tracks, 2, assoc, det_masks, groups, SURE, [1]) == [1, 0]


def test_a_lost_track_trades_for_a_detection_a_swollen_mask_swallowed() -> None:
    # object 1's track slid onto object 0 (moving right, where object 0 should be) and spills
    # onto object 1's detection, which is then neither matched nor new; object 0's track is lost
    tracks = [track(0, 10), track(1, 16)]
    tracks[1].anchor = Anchor(0, torch.tensor([16.0, 16.0, 22.0, 22.0]), torch.zeros(2))
    det_masks = torch.stack([square(12, 10), square(16, 16)])
    spill = torch.zeros(32, 32, dtype=torch.bool)
    spill[16:19, 16:19] = True
    trk_masks = torch.stack([torch.zeros(32, 32, dtype=torch.bool), square(12, 10) | spill])
    groups = torch.zeros(2, dtype=torch.long)
    assoc = associate(
        det_masks, torch.tensor([0.9, 0.9]), groups, trk_masks, groups, AssociationThresholds()
    )
    assert assoc.new_dets == () and assoc.trk_matched.tolist() == [False, True]
    cfg = VideoConfig(reanchor_after=1, untangle_margin=1.0)
    unsure = torch.tensor([False, False])
    assert untangle(cfg, tracks, 2, assoc, det_masks, groups, unsure, []) is None
    assert untangle(cfg, tracks, 2, assoc, det_masks, groups, SURE, []) == [1, 0]
