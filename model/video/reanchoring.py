"""Re-anchoring, the loop's step (`VideoConfig.reanchor_after`; the geometry and pairing are in
model/video/reassociation.py, the reasons in docs/video.md, "Re-anchoring").

Each frame, every object a detection matched has its `Anchor` see that detection's box (one
object per detection, best overlap first; `Anchor.sighted`); an object no detection has matched
for `reanchor_after` frames is offered the would-be new detections and the confident detections
only lost objects overlap, near where it should be now. The same geometry revives dormant
objects (model/video/lifecycle.py): a would-be new detection near where a recently removed object
should be takes back its ID. Before anchors see the frame, `untangle` (`untangle_margin`) finds
look-alikes whose tracks traded objects as they crossed and trades their memories back
(docs/video.md, "Untangling crossings").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch

from model.config import VideoConfig
from model.nn.box_ops import masks_to_boxes
from model.video.association import Association
from model.video.lifecycle import Track
from model.video.reassociation import (
    Anchor,
    crossed_pairs,
    near_anchors,
    pair_greedily,
    reanchor,
    reassociate,
    swallowed_detections,
)


def update_anchors(
    tracks: Sequence[Track],
    assoc: Association,
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    frame: int,
    min_iou: float,
    reach: tuple[float, float, float] | None = None,
) -> None:
    """Matched objects' anchors move to their detections' boxes, one object per detection.

    Pairs (IoU >= min_iou, same concept) are taken best first, so when an object's track has
    slid onto a look-alike that another object's track covers better, the detection confirms
    only that other object: the slid one keeps its last anchor and motion, and once it has gone
    unconfirmed for `reanchor_after` frames, `reanchor_lost` offers it the detection where it
    should be (which would otherwise start a new ID). With `reach` (`reanchor_reach`,
    `reanchor_reach_per_frame`, `reanchor_reach_max`), a detection far from where the object
    should be does not confirm it either: the track jumped onto a look-alike the detector also
    finds there.
    """
    pairs = _matched(tracks, assoc, det_groups, min_iou)
    if not pairs:
        return
    paired = [tracks[i] for i in pairs]
    boxes = masks_to_boxes(det_masks[list(pairs.values())])  # one call for every pair
    near = [True] * len(paired)
    anchored = {k: tr.anchor for k, tr in enumerate(paired) if tr.anchor is not None}
    if reach is not None and anchored:  # one call for every anchored pair: its own box only
        indices = list(anchored)
        close, _ = near_anchors(list(anchored.values()), frame, boxes[indices], *reach)
        for k, ok in zip(indices, close.diagonal().tolist(), strict=True):
            near[k] = ok
    for track, box, ok in zip(paired, boxes, near, strict=True):
        if ok:
            confirm(track, frame, box)


def untangle(
    cfg: VideoConfig,
    tracks: Sequence[Track],
    frame: int,
    assoc: Association,
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    confident: torch.Tensor,
    new_dets: Sequence[int],
) -> list[int] | None:
    """Look-alikes whose tracks traded objects as they crossed trade their memories back.

    Each anchored object is paired with the detection it is about to take: the one its track
    matches (as `update_anchors` pairs them), or for a lost object, the nearest of the
    detections `reanchor_lost` offers it (would-be new ones, and confident ones only swollen
    masks overlap), up to `reanchor_reach_max` sizes away. A pair whose two detections fit
    the objects' motions far better the other way round (`crossed_pairs`, `untangle_margin`)
    crossed, and each track followed the other object out of the crossing: the two `Track`s
    trade memories (`Track.trade_memory`), keeping their IDs and anchors.
    Returns how this frame's tracker rows follow the memories (row i becomes row order[i],
    the output of the memory track i now holds), or None when nothing crossed.
    """
    matched = _matched(tracks, assoc, det_groups, cfg.trk_assoc_iou_thresh)
    farthest = (cfg.reanchor_reach_max, 0.0, cfg.reanchor_reach_max)  # as far as it ever reaches
    lost = reanchor_lost(
        cfg,
        tracks,
        frame,
        assoc,
        det_masks,
        det_groups,
        confident,
        new_dets,
        matched=matched,
        reach=farthest,
    )
    taken = {**matched, **lost}
    anchors = {i: anchor for i in taken if (anchor := tracks[i].anchor) is not None}
    if len(anchors) < 2:
        return None
    rows = list(anchors)
    boxes = masks_to_boxes(det_masks[[taken[i] for i in rows]])
    groups = [tracks[i].group for i in rows]
    crossed = crossed_pairs(
        list(anchors.values()), frame, boxes, groups, cfg.untangle_margin, reach_of(cfg)
    )
    if not crossed:
        return None
    order = list(range(len(tracks)))
    for a, b in crossed:
        i, j = rows[a], rows[b]
        tracks[i].trade_memory(tracks[j])
        order[i], order[j] = j, i
    return order


def _matched(
    tracks: Sequence[Track], assoc: Association, det_groups: torch.Tensor, min_iou: float
) -> dict[int, int]:
    """Track index -> its detection: same concept, IoU >= min_iou, best pairs first, one
    object per detection."""
    rows = torch.nonzero(assoc.trk_matched).flatten().tolist()
    if not rows:
        return {}
    detections = list(range(int(assoc.ious.shape[0])))
    groups = [tracks[i].group for i in rows]
    pairs = pair_greedily(assoc.ious[:, rows], det_groups, detections, groups, min_iou)
    return {rows[j]: d for j, d in pairs.items()}


def confirm(track: Track, frame: int, box: torch.Tensor) -> None:
    """A detection with xyxy `box` confirmed `track` at `frame`: its anchor sees it there
    (`Anchor.sighted`: moved, or carried along when the box has an unlikely size)."""
    anchor = track.anchor
    track.anchor = Anchor(frame, box) if anchor is None else anchor.sighted(frame, box)


def reanchor_lost(
    cfg: VideoConfig,
    tracks: Sequence[Track],
    frame: int,
    assoc: Association,
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    confident: torch.Tensor,
    new_dets: Sequence[int],
    *,
    matched: Mapping[int, int] | None = None,
    reach: tuple[float, float, float] | None = None,
) -> dict[int, int]:
    """Track index -> detection for the concept objects no detection has matched for
    `reanchor_after` frames. det_masks (N, m, m) bool; confident (N,) bool: scores good enough
    to start an object; new_dets: the detections that would start one. Lost objects are offered
    those and the confident detections only swollen masks overlap (`swallowed_detections`).
    `matched` (track index -> detection) leaves objects matched this frame out; `reach` (reach,
    per frame, max) replaces the config's re-anchoring reach."""
    adrift = {
        i: tr
        for i, tr in enumerate(tracks)
        if tr.anchor is not None
        and tr.concept_id is not None
        and frame - tr.anchor.frame >= cfg.reanchor_after
        and i not in (matched or {})
    }
    if not adrift:
        return {}
    swallowed = swallowed_detections(
        assoc.ious, confident, list(adrift), cfg.trk_assoc_iou_thresh, cfg.assoc_iou_thresh
    )
    return _near(cfg, adrift, frame, det_masks, det_groups, [*new_dets, *swallowed], reach)


def reach_of(cfg: VideoConfig) -> tuple[float, float, float]:
    """The re-anchoring reach: (`reanchor_reach`, `reanchor_reach_per_frame`,
    `reanchor_reach_max`), as `near_anchors` takes it."""
    return (cfg.reanchor_reach, cfg.reanchor_reach_per_frame, cfg.reanchor_reach_max)


def revive(
    cfg: VideoConfig,
    dormant: Mapping[int, Track],
    frame: int,
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    new_dets: Sequence[int],
) -> dict[int, int]:
    """Object id -> would-be new detection, for dormant objects (by id) with one near where each
    should be now (its anchor carried along; the reach grows with the frames since its last
    match, as for re-anchoring)."""
    return _near(cfg, dormant, frame, det_masks, det_groups, new_dets)


def _near(
    cfg: VideoConfig,
    tracks: Mapping[int, Track],
    frame: int,
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    candidates: Sequence[int],
    reach: tuple[float, float, float] | None = None,
) -> dict[int, int]:
    """Key -> candidate detection near where each of `tracks` with an anchor should be now
    (`reach`: reach, per frame, max; default the config's re-anchoring reach)."""
    anchors = {k: tr.anchor for k, tr in tracks.items() if tr.anchor is not None}
    groups = {k: tracks[k].group for k in anchors}
    reach = reach_of(cfg) if reach is None else reach
    return reanchor(anchors, groups, frame, det_masks, det_groups, candidates, *reach)


def regain_after_gap(
    det_bin: torch.Tensor,
    det_groups: torch.Tensor,
    new_dets: Sequence[int],
    tracks: Sequence[Track],
    references: Mapping[int, torch.Tensor | None],
    min_iou: float,
) -> dict[int, int]:
    """After a gap: track index -> detection, for the concept objects among `references` (track
    index -> its last visible mask; model/video/reassociation.py)."""
    rows = [i for i, m in references.items() if m is not None and tracks[i].concept_id is not None]
    if not rows:
        return {}
    masks = torch.stack([cast(torch.Tensor, references[i]) for i in rows])  # rows hold masks
    groups = [cast(int, tracks[i].concept_id) for i in rows]  # and concept ids
    pairs = reassociate(det_bin, det_groups, new_dets, masks, groups, min_iou)
    return {rows[j]: d for j, d in pairs.items()}
