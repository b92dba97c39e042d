"""Pure rules of the online video loop: matching detections to tracks, and the hot-start window.

Everything here is a function of tensors and plain values (no module state, no I/O), so each
rule of the official per-frame algorithm (docs/video.md, "Per frame") is testable on
hand-made masks. Masks are compared on the tracker's low-resolution grid; "binary" means
logit > 0. Object groups (`groups`) are concept ids: detections never match, and objects never
suppress, across concepts (HF `Sam3VideoModel` prompt groups; the official loop has one concept).

The mask clean-up rules that follow association (occlusion suppression, non-overlap, hole
filling) live in model/video/mask_rules.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch

from model.nn.box_ops import mask_iou

# --- mask NMS (mask IoU lives in model/nn/box_ops.py) ----------------------------------------------


def mask_nms(scores: torch.Tensor, masks: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS on binary masks: (N,) scores, (N, H, W) bool -> (N,) bool keep.

    Walks detections from the best score down (ties: lower index first) and drops every later
    one whose IoU with a kept detection is > `iou_threshold` (strictly, as the official NMS).
    """
    n = int(scores.shape[0])
    keep = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if n == 0:
        return keep
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    ious = mask_iou(masks, masks).cpu()  # N x N, one host copy for the greedy walk
    suppressed = torch.zeros(n, dtype=torch.bool)
    for i in order:
        if suppressed[i]:
            continue
        keep[i] = True
        suppressed |= ious[i] > iou_threshold
    return keep


# --- detection <-> track association ----------------------------------------------------------


class Association(NamedTuple):
    """How one frame's N detections relate to its M tracked objects (indices, not ids)."""

    new_dets: tuple[
        int, ...
    ]  # detections that spawn objects: prob >= new_det_thresh, no track IoU >= assoc
    trk_matched: torch.Tensor  # (M,) bool: some detection has IoU >= trk_assoc_iou_thresh
    trk_unmatched: torch.Tensor  # (M,) bool: non-empty and not matched
    trk_empty: torch.Tensor  # (M,) bool: empty mask
    det_to_trks: tuple[tuple[int, ...], ...]  # per detection: tracks with IoU >= assoc_iou_thresh
    recondition: Mapping[int, int]  # track -> its confident, high-IoU detection
    ious: torch.Tensor  # (N, M) float, zero across groups


@dataclass(frozen=True)
class AssociationThresholds:
    assoc_iou: float = 0.1
    trk_assoc_iou: float = 0.5
    new_det: float = 0.7
    high_conf: float = 0.8
    high_iou: float = 0.8


def associate(
    det_masks: torch.Tensor,
    det_scores: torch.Tensor,
    det_groups: torch.Tensor,
    trk_masks: torch.Tensor,
    trk_groups: torch.Tensor,
    thresholds: AssociationThresholds,
    new_det_min: torch.Tensor | None = None,
) -> Association:
    """Match N detections (bool (N, H, W), probs (N,)) to M tracks (bool (M, H, W)).

    Many-to-one is allowed: one detection may match several tracks (that is how duplicates are
    found). `recondition` maps a track to the detection with prob >= high_conf whose best IoU
    (>= high_iou) is that track; when several detections pick one track the last one wins, and
    IoU ties pick the first track, exactly as the official loop iterates. `new_det_min` (N,)
    replaces the new-object threshold per detection (per-concept thresholds).
    """
    n, m = int(det_masks.shape[0]), int(trk_masks.shape[0])
    new_min = thresholds.new_det if new_det_min is None else new_det_min  # per-concept override
    device = trk_masks.device if m else det_masks.device
    trk_empty = (
        ~trk_masks.flatten(1).any(1) if m else torch.zeros(0, dtype=torch.bool, device=device)
    )
    if n == 0 or m == 0:
        # With no tracks the official SAM 3 spawns every detection; we keep the new_det
        # threshold here too (later upstream does the same), see docs/video.md.
        new = tuple(torch.nonzero(det_scores >= new_min).flatten().tolist())
        no_match = torch.zeros(m, dtype=torch.bool, device=device)
        return Association(
            new_dets=new,
            trk_matched=no_match,
            trk_unmatched=~trk_empty,
            trk_empty=trk_empty,
            det_to_trks=tuple(() for _ in range(n)),
            recondition={},
            ious=torch.zeros(n, m, device=device),
        )

    same_group = det_groups[:, None] == trk_groups[None, :]  # N x M
    ious = torch.where(same_group, mask_iou(det_masks, trk_masks), 0.0)  # N x M
    trk_matched = (ious >= thresholds.trk_assoc_iou).any(0)
    det_matched = (ious >= thresholds.assoc_iou).any(1)
    is_new = (det_scores >= new_min) & ~det_matched
    best_iou, best_trk = ious.max(1)
    confident = (det_scores >= thresholds.high_conf) & ~is_new & (best_iou >= thresholds.high_iou)

    det_to_trks = tuple(
        tuple(torch.nonzero(row >= thresholds.assoc_iou).flatten().tolist()) for row in ious
    )
    recondition: dict[int, int] = {}
    for d in torch.nonzero(confident).flatten().tolist():
        recondition[int(best_trk[d])] = d
    return Association(
        new_dets=tuple(torch.nonzero(is_new).flatten().tolist()),
        trk_matched=trk_matched,
        trk_unmatched=~trk_empty & ~trk_matched,
        trk_empty=trk_empty,
        det_to_trks=det_to_trks,
        recondition=recondition,
        ious=ious,
    )


def cap_new_detections(
    new_dets: Sequence[int], det_scores: torch.Tensor, room: int
) -> tuple[int, ...]:
    """Keep at most `room` new detections, best score first (ties: lower index first).

    Under the cap the order is unchanged (IDs follow detection order); over it, new IDs follow
    the kept detections' score order, as the official `max_num_objects` rule does.
    """
    if len(new_dets) <= room:
        return tuple(new_dets)
    if room <= 0:
        return ()
    ranked = sorted(new_dets, key=lambda d: (-float(det_scores[d]), d))
    return tuple(ranked[:room])


# --- hot-start: removal of new objects that do not hold up --------------------------------------


@dataclass(frozen=True)
class HotStart:
    """Counters of one object while it is inside its hot-start window (dropped afterwards).

    The official loop keeps per-object lists of unmatched frames and per-pair lists of shared
    frames forever; only their lengths inside the window matter, so counts suffice and nothing
    outlives the window.
    """

    first_frame: int
    unmatched: int = 0
    shared_with: Mapping[int, int] = field(default_factory=dict)  # older object id -> shared frames


class HotStartUpdate(NamedTuple):
    windows: dict[int, HotStart]  # objects still inside their window, updated
    unmatched: frozenset[int]  # removed: unmatched on too many frames
    duplicates: frozenset[int]  # removed: shared detections with an older object too often

    @property
    def removed(self) -> frozenset[int]:
        return self.unmatched | self.duplicates


@dataclass(frozen=True)
class HotStartRule:
    delay: int = 15
    unmatch_thresh: int = 8
    dup_thresh: int = 8


def in_hotstart(first_frame: int, frame_index: int, delay: int) -> bool:
    """True while an object first seen at `first_frame` can still be removed."""
    return first_frame > frame_index - delay


def update_hotstart(
    windows: Mapping[int, HotStart],
    first_frames: Mapping[int, int],
    frame_index: int,
    unmatched_ids: Sequence[int],
    det_to_ids: Sequence[Sequence[int]],
    rule: HotStartRule,
) -> HotStartUpdate:
    """One frame of the hot-start rules over the objects still inside their window.

    `first_frames` holds every live object (duplicates are attributed to the one seen first,
    lowest id on ties); `det_to_ids` lists, per detection, the object ids it matched. An object
    is removed when, inside its window, it has been unmatched on >= unmatch_thresh frames or has
    shared a detection with one older object on >= dup_thresh frames. Older objects are never
    removed by these rules.
    """
    counts = {oid: dict(w.shared_with) for oid, w in windows.items()}
    unmatched = {oid: w.unmatched for oid, w in windows.items()}
    for oid in unmatched_ids:
        if oid in unmatched:
            unmatched[oid] += 1
    for ids in det_to_ids:
        if len(ids) < 2:
            continue
        first = min(ids, key=lambda i: (first_frames[i], i))
        for oid in ids:
            if oid != first and oid in counts:
                counts[oid][first] = counts[oid].get(first, 0) + 1

    never_matched: set[int] = set()
    duplicates: set[int] = set()
    kept: dict[int, HotStart] = {}
    for oid, window in windows.items():
        if unmatched[oid] >= rule.unmatch_thresh:
            never_matched.add(oid)
        elif any(c >= rule.dup_thresh for c in counts[oid].values()):
            duplicates.add(oid)
        elif in_hotstart(window.first_frame, frame_index + 1, rule.delay):
            kept[oid] = replace(window, unmatched=unmatched[oid], shared_with=counts[oid])
    return HotStartUpdate(
        windows=kept, unmatched=frozenset(never_matched), duplicates=frozenset(duplicates)
    )
