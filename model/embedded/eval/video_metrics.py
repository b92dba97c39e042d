"""Tracking metrics for one prompted concept over a clip: identity, continuity, presence, masks.

Each frame, ground-truth objects and predicted objects are matched one-to-one by Hungarian
matching on mask IoU; pairs with IoU >= `iou_threshold` count as matched.

- ID switch (CLEAR-MOT): a ground-truth object is matched to a different predicted id than the
  one it was last matched to. Reported per 1,000 ground-truth object-frames.
- Fragmentation: a ground-truth object that was matched, then unmatched while still visible,
  is matched again. A fragmented track is a ground-truth object matched to more than one
  predicted id over the clip.
- Presence per frame: "the concept is there" (any ground truth) vs "the tracker reports
  something" (any prediction): true/false positives and negatives over frames.
- Mask IoU of tracked objects: mean IoU of the matched pairs; recall: matched object-frames over
  ground-truth object-frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from model.embedded.eval.image_metrics import mask_iou_matrix


@dataclass(frozen=True)
class FrameObjects:
    """Objects on one frame: ids (N,) int64 and masks (N, H, W) bool."""

    ids: np.ndarray
    masks: np.ndarray

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.masks):
            raise ValueError(f"{len(self.ids)} ids but {len(self.masks)} masks")


@dataclass(frozen=True)
class VideoCounts:
    """Additive counts over frames and clips (sum clips with `+`)."""

    frames: int = 0
    object_frames: int = 0  # ground-truth objects summed over frames
    matched: int = 0
    iou_sum: float = 0.0
    unmatched_predictions: int = 0  # predicted object-frames matching no ground truth
    id_switches: int = 0
    fragmentations: int = 0
    gt_tracks: int = 0
    fragmented_tracks: int = 0
    presence_tp: int = 0
    presence_fp: int = 0
    presence_tn: int = 0
    presence_fn: int = 0

    def __add__(self, other: VideoCounts) -> VideoCounts:
        return VideoCounts(
            **{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__}
        )

    @property
    def id_switches_per_1k(self) -> float:
        return 1000.0 * self.id_switches / max(self.object_frames, 1)

    @property
    def mean_iou(self) -> float:
        return self.iou_sum / max(self.matched, 1)

    @property
    def recall(self) -> float:
        return self.matched / max(self.object_frames, 1)


def count_clip(
    truth: Sequence[FrameObjects], predicted: Sequence[FrameObjects], iou_threshold: float = 0.5
) -> VideoCounts:
    """Count one clip; `truth[t]` and `predicted[t]` describe the same frame t."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} ground-truth frames but {len(predicted)} predicted")
    last_match: dict[int, int] = {}  # gt id -> pred id it was last matched to
    was_matched: dict[int, bool] = {}  # gt id -> matched on its previous visible frame
    pred_ids_of: dict[int, set[int]] = {}
    c = dict.fromkeys(VideoCounts.__dataclass_fields__, 0)
    iou_sum = 0.0
    for gt, pr in zip(truth, predicted, strict=True):
        c["frames"] += 1
        c["object_frames"] += len(gt.ids)
        has_gt, has_pred = len(gt.ids) > 0, len(pr.ids) > 0
        c[
            "presence_tp"
            if has_gt and has_pred
            else "presence_fn"
            if has_gt
            else "presence_fp"
            if has_pred
            else "presence_tn"
        ] += 1
        iou = (
            mask_iou_matrix(gt.masks, pr.masks)
            if has_gt and has_pred
            else np.zeros((len(gt.ids), len(pr.ids)))
        )
        rows, cols = (
            linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
        )
        good = iou[rows, cols] >= iou_threshold
        matches = {
            int(gt.ids[r]): int(pr.ids[k]) for r, k, ok in zip(rows, cols, good, strict=True) if ok
        }
        iou_sum += float(iou[rows, cols][good].sum())
        c["matched"] += len(matches)
        c["unmatched_predictions"] += len(pr.ids) - len(matches)
        for gid in gt.ids.tolist():
            pid = matches.get(gid)
            if pid is None:
                was_matched[gid] = False
                continue
            if gid in last_match and last_match[gid] != pid:
                c["id_switches"] += 1
            if gid in was_matched and not was_matched[gid] and gid in last_match:
                c["fragmentations"] += 1
            last_match[gid] = pid
            was_matched[gid] = True
            pred_ids_of.setdefault(gid, set()).add(pid)
    gt_ids = {int(i) for f in truth for i in f.ids.tolist()}
    c["gt_tracks"] = len(gt_ids)
    c["fragmented_tracks"] = sum(len(p) > 1 for p in pred_ids_of.values())
    fields: dict[str, Any] = {**c, "iou_sum": iou_sum}  # int counts and one float
    return VideoCounts(**fields)
