"""Re-anchoring, the loop's step (`VideoConfig.reanchor_after`; the geometry and pairing are in
model/reassociation.py, the reasons in docs/video.md, "Re-anchoring").

Each frame, every object a detection matched moves its `Anchor` to that detection's box; an
object no detection has matched for `reanchor_after` frames is offered the would-be new
detections and the confident detections only lost objects overlap, near where it should be now.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model.association import Association
from model.box_ops import masks_to_boxes
from model.config import VideoConfig
from model.lifecycle import Track
from model.reassociation import Anchor, reanchor, swallowed_detections


def update_anchors(
    tracks: Sequence[Track], assoc: Association, det_masks: torch.Tensor, frame: int
) -> None:
    """Each matched object's anchor moves to its best-overlapping detection's box."""
    rows = torch.nonzero(assoc.trk_matched).flatten().tolist()
    if not rows:
        return
    boxes = masks_to_boxes(det_masks[assoc.ious[:, rows].argmax(0)])
    for k, i in enumerate(rows):
        confirm(tracks[i], frame, boxes[k])


def confirm(track: Track, frame: int, box: torch.Tensor) -> None:
    """A detection with xyxy `box` confirmed `track` at `frame`: its anchor moves there."""
    anchor = track.anchor
    track.anchor = Anchor(frame, box) if anchor is None else anchor.moved_to(frame, box)


def reanchor_lost(
    cfg: VideoConfig,
    tracks: Sequence[Track],
    frame: int,
    assoc: Association,
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    confident: torch.Tensor,
    new_dets: Sequence[int],
) -> dict[int, int]:
    """Track index -> detection for the concept objects no detection has matched for
    `reanchor_after` frames. det_masks (N, m, m) bool; confident (N,) bool: scores good enough
    to start an object; new_dets: the detections that would start one."""
    adrift = {
        i: tr.anchor
        for i, tr in enumerate(tracks)
        if tr.anchor is not None
        and tr.concept_id is not None
        and frame - tr.anchor.frame >= cfg.reanchor_after
    }
    if not adrift:
        return {}
    swallowed = swallowed_detections(
        assoc.ious, confident, list(adrift), cfg.trk_assoc_iou_thresh, cfg.assoc_iou_thresh
    )
    return reanchor(
        adrift,
        {i: tracks[i].group for i in adrift},
        frame,
        det_masks,
        det_groups,
        [*new_dets, *swallowed],
        cfg.reanchor_reach,
        cfg.reanchor_reach_per_frame,
    )
