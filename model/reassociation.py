"""Giving a would-be new detection to an object the tracker lost, so the object keeps its ID.

Two cases share one greedy matcher:

* after a gap in the stream (`VideoTracker.mark_gap`), objects the tracker no longer sees are
  found again by a detection overlapping their last visible mask (mask IoU);
* re-anchoring (`VideoConfig.reanchor_after`, ours, off by default): an object that no
  detection has matched for a few frames (its mask drifted onto something else, or vanished)
  is found again by a detection near where it was last matched. The object has moved since, so
  the test is box IoU against its last matched box grown by `margin` of its size on each side.

The caller re-conditions each regained object on its detection (a new conditioning memory and
that detection's mask as the frame's output), exactly as periodic re-conditioning does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model.box_ops import box_iou, mask_iou, masks_to_boxes


def grow_boxes(boxes: torch.Tensor, margin: float) -> torch.Tensor:
    """(N, 4) xyxy boxes grown by `margin` of their width / height on each side."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + margin * size * torch.tensor([-1.0, -1.0, 1.0, 1.0], device=boxes.device)


def reassociate(
    det_masks: torch.Tensor,
    det_groups: torch.Tensor,
    new_dets: Sequence[int],
    masks: torch.Tensor,
    groups: Sequence[int],
    min_iou: float,
    box_margin: float | None = None,
) -> dict[int, int]:
    """Pair would-be new detections with lost objects: {object row -> detection index}.

    det_masks (N, H, W) bool with concept ids det_groups (N,); new_dets: the detections that
    would spawn objects; masks (L, H, W) bool: each lost object's reference mask, groups its
    concept. Pairs need the same concept and IoU >= min_iou: mask IoU, or with `box_margin` the
    IoU of the detection's box and the reference box grown by that margin. Greedy by IoU, each
    object and detection used once.
    """
    if not new_dets or len(groups) == 0:
        return {}
    candidates = det_masks[list(new_dets)]
    if box_margin is None:
        ious = mask_iou(candidates, masks)  # D x L
    else:
        ious = box_iou(masks_to_boxes(candidates), grow_boxes(masks_to_boxes(masks), box_margin))
    same = det_groups[list(new_dets)][:, None] == torch.tensor(list(groups), device=ious.device)
    ious = torch.where(same, ious, 0.0)
    pairs: dict[int, int] = {}
    for flat in torch.argsort(ious.flatten(), descending=True, stable=True).tolist():
        d, j = divmod(flat, len(groups))
        if float(ious[d, j]) < min_iou:
            break
        if j not in pairs and new_dets[d] not in pairs.values():
            pairs[j] = new_dets[d]
    return pairs
