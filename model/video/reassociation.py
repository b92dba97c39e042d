"""Giving a detection to an object the tracker lost, so the object keeps its ID.

Two cases share one greedy matcher:

* after a gap in the stream (`VideoTracker.mark_gap`), objects the tracker no longer sees are
  found again by a would-be new detection overlapping their last visible mask (mask IoU);
* re-anchoring (`VideoConfig.reanchor_after`, ours, off by default): an object that no
  detection has matched for a few frames (its mask drifted onto something else, swelled over a
  neighbour, or vanished) is found again by a detection where it should be now. Each object
  keeps an `Anchor`: the box of the detection that last matched it and the smoothed motion of
  that box, so the expected box is the last one carried along at that speed (constant
  velocity, as in SORT); a detection is near when its centre lies within a reach that grows
  with the time since the last match (the object may have turned meanwhile), or when it holds
  the expected box merged with a neighbour. Confirmations of an unlikely size (a merge, a
  partial view) carry the anchor along rather than move it, so its motion stays the object's.
  Candidates are the would-be new detections and the confident detections that only swollen
  masks overlap: a lost object's, or a neighbour's that has its own detection (official
  association counts those as matched, so they would neither start an object nor correct the
  swollen one).

The caller re-conditions each regained object on its detection (a new conditioning memory and
that detection's mask as the frame's output), exactly as periodic re-conditioning does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from model.nn.box_ops import box_area, box_intersection, mask_iou, masks_to_boxes

VELOCITY_SMOOTHING = 0.5  # weight of the previous velocity when a new match updates it
MERGED_COVER = 0.8  # a merged detection's box holds this much of the expected box ...
MERGED_SIZE = 3.0  # ... and is at most this many times its size (sqrt of the area)
LIKELY_SIZE = 2.0  # the object's box is at most this many times larger or smaller than expected
MAX_ODD_SIGHTINGS = 3  # sightings of an unlikely size in a row before the anchor takes them


@dataclass(frozen=True)
class Anchor:
    """Where a detection last confirmed an object: frame, xyxy box (mask pixels) and the box's
    per-frame motion (None until a second match)."""

    frame: int
    box: torch.Tensor  # (4,)
    velocity: torch.Tensor | None = None  # (2,) mask pixels per frame
    odd_sightings: int = 0  # consecutive sightings of an unlikely size, carried along instead

    def sighted(self, frame: int, box: torch.Tensor) -> Anchor:
        """The anchor after a detection with xyxy `box` confirmed the object at `frame`.

        A box more than `LIKELY_SIZE` times larger or smaller than expected is most likely the
        object merged with a neighbour or partly hidden, so the anchor is carried along at its own
        motion instead; after `MAX_ODD_SIGHTINGS` such sightings in a row the object has
        really changed size and the box is taken.
        """
        expected = self.expected_box(frame)
        ratio = float(_size(box[None])[0] / _size(expected[None])[0])
        if 1 / LIKELY_SIZE <= ratio <= LIKELY_SIZE or self.odd_sightings >= MAX_ODD_SIGHTINGS:
            return self.moved_to(frame, box)
        return Anchor(frame, expected, self.velocity, self.odd_sightings + 1)

    def moved_to(self, frame: int, box: torch.Tensor) -> Anchor:
        """The anchor after a detection matched the object again at `frame` with `box`."""
        step = (_centres(box[None]) - _centres(self.box[None]))[0] / max(frame - self.frame, 1)
        if self.velocity is not None:
            step = VELOCITY_SMOOTHING * self.velocity + (1 - VELOCITY_SMOOTHING) * step
        return Anchor(frame, box, step)

    def expected_box(self, frame: int) -> torch.Tensor:
        """(4,) the last matched box carried along at the object's velocity up to `frame`."""
        if self.velocity is None:
            return self.box
        return self.box + (frame - self.frame) * self.velocity.repeat(2)


def pair_greedily(
    ious: torch.Tensor,
    det_groups: torch.Tensor,
    candidates: Sequence[int],
    groups: Sequence[int],
    min_iou: float,
) -> dict[int, int]:
    """ious (D, L) between the candidate detections and L lost objects -> {object row ->
    detection index}: same concept, IoU >= min_iou, best pairs first, each side used once."""
    if not candidates or len(groups) == 0:
        return {}
    same = det_groups[list(candidates)][:, None] == torch.tensor(list(groups), device=ious.device)
    ious = torch.where(same, ious, 0.0)
    pairs: dict[int, int] = {}
    for flat in torch.argsort(ious.flatten(), descending=True, stable=True).tolist():
        d, j = divmod(flat, len(groups))
        if float(ious[d, j]) < min_iou:
            break
        if j not in pairs and candidates[d] not in pairs.values():
            pairs[j] = candidates[d]
    return pairs


def reassociate(
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    new_dets: Sequence[int],
    masks: torch.Tensor,
    groups: Sequence[int],
    min_iou: float,
) -> dict[int, int]:
    """After a gap: {lost object row -> would-be new detection} by mask IoU.

    det_masks (N, H, W) bool with concept ids det_groups (N,); masks (L, H, W) bool: each lost
    object's last visible mask, groups its concept.
    """
    if not new_dets or len(groups) == 0:
        return {}
    ious = mask_iou(det_masks[list(new_dets)], masks)  # D x L
    return pair_greedily(ious, det_groups, new_dets, groups, min_iou)


def swallowed_detections(
    ious: torch.Tensor,
    confident: torch.Tensor,
    adrift: Sequence[int],
    match_iou: float,
    overlap_iou: float,
) -> list[int]:
    """Confident detections that no object matches and that only swollen masks overlap.

    ious (N, M) detection-object mask IoU (zero across concepts); confident (N,) bool; adrift:
    the lost objects' columns. A detection is swallowed when it overlaps (>= overlap_iou) at
    least one object, none well enough to match (>= match_iou), and each object it overlaps
    is lost or overlaps another detection more: a lost object's mask has swollen over it, or
    a neighbour's has, from the neighbour's own detection.
    """
    lost = torch.zeros(ious.shape[1], dtype=torch.bool, device=ious.device)
    lost[list(adrift)] = True
    overlaps = ious >= overlap_iou
    own = torch.zeros_like(overlaps)  # (N, M): the detection each object overlaps most
    if ious.numel():
        own[ious.argmax(0), torch.arange(ious.shape[1], device=ious.device)] = True
    claimed = overlaps & own & ~lost
    keep = confident & overlaps.any(1) & ~claimed.any(1) & ~(ious >= match_iou).any(1)
    return torch.nonzero(keep).flatten().tolist()


def reanchor(
    anchors: Mapping[int, Anchor],
    groups: Mapping[int, int],
    frame: int,
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    candidates: Sequence[int],
    reach: float,
    reach_per_frame: float,
    reach_max: float = math.inf,
) -> dict[int, int]:
    """{object index -> detection} for lost objects (`anchors`, by object index, with their
    concepts in `groups`) and candidate detections near where each object should be now
    (`near_anchors`). Nearest pairs first.
    """
    rows = list(anchors)
    if not candidates or not rows:
        return {}
    boxes = masks_to_boxes(det_masks[list(candidates)])  # D x 4
    near, distance = near_anchors(
        [anchors[i] for i in rows], frame, boxes, reach, reach_per_frame, reach_max
    )
    closeness = torch.where(near, 1 / (1 + distance), 0.0)  # in (0, 1] when near
    pairs = pair_greedily(closeness, det_groups, candidates, [groups[i] for i in rows], 1e-9)
    return {rows[j]: d for j, d in pairs.items()}


def near_anchors(
    anchors: Sequence[Anchor],
    frame: int,
    boxes: torch.Tensor,
    reach: float,
    reach_per_frame: float,
    reach_max: float = math.inf,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(D, L) bool: which of the xyxy `boxes` (D, 4) are near where each anchor's object should
    be at `frame`, and (D, L) their centre distances in object sizes.

    Near: the box centre lies within `reach` object sizes (sqrt of the anchor box's area) of the
    expected box's centre or of the last matched one's (the object may have stopped),
    `reach_per_frame` more for each frame after the first since the last match (the object may
    have turned), up to `reach_max` (an object lost long ago does not take over a look-alike
    anywhere in the frame), and the two boxes' sizes differ by at most `LIKELY_SIZE`. Also near: the
    object merged with a neighbour, a box that covers `MERGED_COVER` of the expected box and is
    at most `MERGED_SIZE` times its size.
    """
    expected = torch.stack([a.expected_box(frame) for a in anchors])  # L x 4
    last = torch.stack([a.box for a in anchors])  # L x 4: the object may have stopped
    size = _size(expected)
    centres = _centres(boxes)
    distance = (
        torch.minimum(  # D x L, in object sizes
            torch.cdist(centres, _centres(expected)), torch.cdist(centres, _centres(last))
        )
        / size
    )
    since = torch.tensor(
        [frame - a.frame for a in anchors], dtype=distance.dtype, device=distance.device
    )
    allowed = (reach + reach_per_frame * (since - 1).clamp(min=0)).clamp(max=reach_max)
    ratio = _size(boxes)[:, None] / size
    likely = (ratio >= 1 / LIKELY_SIZE) & (ratio <= LIKELY_SIZE)
    merged = (_covered(expected, boxes) >= MERGED_COVER) & (ratio <= MERGED_SIZE)
    return ((distance <= allowed) & likely) | merged, distance


CROSSED_RATIO = 2.0  # traded detections fit the two motions at least this many times better


def crossed_pairs(
    anchors: Sequence[Anchor],
    frame: int,
    boxes: torch.Tensor,
    groups: Sequence[int],
    margin: float,
    reach: tuple[float, float, float],
) -> list[tuple[int, int]]:
    """Pairs (a, b) of objects of one concept whose tracks have traded objects at `frame`.

    `boxes` (K, 4) xyxy: the detection each of the K anchored objects matched this frame. The
    two detections fit the objects' motions better the other way round: their summed centre
    distances from where each object should be (in object sizes, as `near_anchors`) drop by at
    least `margin` and by `CROSSED_RATIO` times, and each is near the object it would go to
    (`reach`: `near_anchors`' reach, per frame and max). The clearest pairs first; each object
    in one pair at most.
    """
    if len(anchors) < 2:
        return []
    near, distance = near_anchors(anchors, frame, boxes, *reach)  # (K, K): [box, anchor]
    kept = distance.diagonal()
    now = kept[:, None] + kept[None, :]
    traded = distance + distance.T  # [a, b]: a's box to b, b's box to a
    same = torch.tensor(list(groups), device=boxes.device)
    crossed = (
        (same[:, None] == same[None, :])
        & near
        & near.T
        & (now - traded >= margin)
        & (traded * CROSSED_RATIO <= now)
    )
    crossed = torch.triu(crossed, diagonal=1)
    gain = torch.where(crossed, now - traded, -math.inf).flatten()
    gains = gain.tolist()  # one host copy, as the loop reads every entry it visits
    pairs: list[tuple[int, int]] = []
    taken: set[int] = set()
    for flat in torch.argsort(gain, descending=True, stable=True).tolist():
        if gains[flat] == -math.inf:
            break
        a, b = divmod(flat, len(anchors))
        if a not in taken and b not in taken:
            pairs.append((a, b))
            taken |= {a, b}
    return pairs


def _covered(boxes: torch.Tensor, covers: torch.Tensor) -> torch.Tensor:
    """(L, 4), (D, 4) xyxy -> (D, L): the fraction of each of `boxes` inside each of `covers`."""
    return box_intersection(covers, boxes) / box_area(boxes).clamp(min=1)


def _centres(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _size(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) -> (N,) the side of the square of the same area, at least one pixel."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1)
    return (wh[:, 0] * wh[:, 1]).sqrt()
