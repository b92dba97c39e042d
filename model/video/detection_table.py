"""One frame's detections, as the online loop uses them (model/video/frame.py).

Each concept's raw detector output is cut at that concept's score threshold and de-duplicated by
mask NMS, and all concepts' survivors go into one table, each row tagged with its concept and
that concept's new-object threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from model.config import VideoConfig
from model.nn.box_ops import mask_iou
from model.types import Concept
from model.video.association import mask_nms
from model.video.frame_model import FrameDetections


class DetectionTable(NamedTuple):
    """All concepts' kept detections on one frame, as one table: N rows on the tracker grid."""

    logits: torch.Tensor  # (N, m, m)
    scores: torch.Tensor  # (N,)
    groups: torch.Tensor  # (N,) concept ids
    new_min: torch.Tensor  # (N,) new-object threshold of each detection's concept


def keep_detections(
    m: int,
    device: torch.device,
    cfg: VideoConfig,
    concepts: Mapping[int, Concept],
    outs: Sequence[FrameDetections],
) -> DetectionTable:
    """Each concept's detections (`outs`, in `concepts` order) above its threshold, after mask
    NMS, in one table on the m x m tracker grid."""
    empty = DetectionTable(
        torch.zeros(0, m, m, device=device),
        torch.zeros(0, device=device),
        torch.zeros(0, dtype=torch.long, device=device),
        torch.zeros(0, device=device),
    )
    if not concepts:
        return empty
    parts = []
    for cid, out in zip(concepts, outs, strict=True):
        thresholds = concepts[cid].thresholds
        keep_min = (
            cfg.score_threshold_detection if thresholds.detection is None else thresholds.detection
        )
        new_min = cfg.new_det_thresh if thresholds.new_object is None else thresholds.new_object
        keep = out.scores > keep_min
        if cfg.det_nms_thresh > 0:
            idx = torch.nonzero(keep).flatten()
            nms = mask_nms(out.scores[idx], out.mask_logits[idx] > 0, cfg.det_nms_thresh)
            keep = torch.zeros_like(keep)
            keep[idx[nms]] = True
        idx = torch.nonzero(keep).flatten()
        parts.append(
            DetectionTable(
                out.mask_logits[idx],
                out.scores[idx],
                torch.full_like(idx, cid),
                torch.full((len(idx),), new_min, device=device),
            )
        )
    return DetectionTable(*(torch.cat(cols) for cols in zip(empty, *parts, strict=True)))


def not_over(
    new_dets: Sequence[int], det_bin: torch.Tensor, taken: torch.Tensor, iou: float
) -> list[int]:
    """Drop new detections that cover an object the user prompted on this frame."""
    if not new_dets or taken.shape[0] == 0:
        return list(new_dets)
    best = mask_iou(det_bin[list(new_dets)], taken).amax(1)
    return [d for d, b in zip(new_dets, best.tolist(), strict=True) if b < iou]
