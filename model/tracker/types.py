"""Typed values crossing the tracker's boundary (model/tracker/tracker.py).

The tracker keeps no per-stream state: the caller (model/video/video_tracker.py) owns the memories
(model/tracker/memory_bank.py `MemoryBank`, batched into a `MemoryBatch`) and passes them in per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


class TrackerFeatures(NamedTuple):
    """One frame's tracker-neck maps, prepared once per frame by `Tracker.prepare_features`.

    feat_s0 (B, C/8, 4g, 4g) and feat_s1 (B, C/4, 2g, 2g): the 4x and 2x `sam2_convs` levels
    after the mask decoder's `conv_s0` / `conv_s1`; pix (B, C, g, g): the 1x level, unconditioned;
    pix_pos (1, C, g, g): its sine position encoding. B is 1 (one frame, expanded over the
    objects inside the tracker) or the number of objects (see `select`).
    """

    feat_s0: torch.Tensor
    feat_s1: torch.Tensor
    pix: torch.Tensor
    pix_pos: torch.Tensor

    def expand(self, n: int) -> TrackerFeatures:
        """One frame's features broadcast over n objects (views, no copies); as is if B == n."""
        b = self.pix.shape[0]
        if b == n:
            return self
        if b != 1:
            raise ValueError(f"features hold {b} frames for {n} objects; use features.select(rows)")
        return TrackerFeatures(
            feat_s0=self.feat_s0.expand(n, -1, -1, -1),
            feat_s1=self.feat_s1.expand(n, -1, -1, -1),
            pix=self.pix.expand(n, -1, -1, -1),
            pix_pos=self.pix_pos,
        )

    def select(self, frame_of_object: torch.Tensor) -> TrackerFeatures:
        """Per-object features for objects coming from several frames: rows (N,) long."""
        return TrackerFeatures(
            feat_s0=self.feat_s0[frame_of_object],
            feat_s1=self.feat_s1[frame_of_object],
            pix=self.pix[frame_of_object],
            pix_pos=self.pix_pos,
        )


@dataclass(frozen=True)
class ObjectPrompt:
    """Prompts for one object on the current frame, in model-input pixels (0 .. image_size).

    points (P, 2) xy with labels (P,) int (1 positive, 0 negative); box (4,) xyxy; mask (H, W)
    bool or float in [0, 1] at any resolution. A mask excludes points and box (official
    `add_new_mask`: the mask is taken as the output). A prompted frame becomes a conditioning
    memory for that object; whether the tracker also attends to older memories on that frame is
    the caller's choice (pass none for a first frame, as the official `is_init_cond_frame`).
    """

    points: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    box: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.points is None) != (self.labels is None):
            raise ValueError("points and labels come together")
        if self.points is not None and self.labels is not None:
            if self.points.ndim != 2 or self.points.shape[-1] != 2:
                raise ValueError(f"points must be (P, 2), got {tuple(self.points.shape)}")
            if self.labels.shape != self.points.shape[:1]:
                raise ValueError(
                    f"labels {tuple(self.labels.shape)} do not match points {tuple(self.points.shape)}"
                )
        if self.box is not None and self.box.shape != (4,):
            raise ValueError(f"box must be (4,) xyxy, got {tuple(self.box.shape)}")
        if self.mask is not None:
            if self.mask.ndim != 2:
                raise ValueError(f"mask must be (H, W), got {tuple(self.mask.shape)}")
            if self.points is not None or self.box is not None:
                raise ValueError("a mask prompt cannot be combined with points or a box")
        if self.points is None and self.box is None and self.mask is None:
            raise ValueError("an ObjectPrompt needs points, a box or a mask")

    @property
    def num_points(self) -> int:
        """Point tokens this prompt makes (a box counts as two, as in the official tracker)."""
        clicks = 0 if self.points is None else int(self.points.shape[0])
        return clicks + (2 if self.box is not None else 0)

    def points_and_labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(num_points, 2) float coordinates and (num_points,) long labels: box corners first
        (labels 2 and 3), then the clicks. Empty for a mask prompt."""
        coords: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        if self.box is not None:
            coords.append(self.box.reshape(2, 2).float())
            labels.append(torch.tensor([2, 3], device=self.box.device))
        if self.points is not None and self.labels is not None:
            coords.append(self.points.float())
            labels.append(self.labels.long())
        if not coords:
            device = None if self.mask is None else self.mask.device
            return torch.zeros(0, 2, device=device), torch.zeros(0, dtype=torch.long, device=device)
        return torch.cat(coords), torch.cat(labels)


class TrackStepOutput(NamedTuple):
    """The tracker's prediction for N objects on one frame.

    low_res_masks (N, 1, 4g, 4g) float32 logits (288 x 288 at full size), -1024 everywhere for
    objects judged absent; high_res_masks (N, 1, image_size, image_size) float32 or None when not
    requested; iou_scores (N,) predicted IoU of each returned mask; object_score_logits (N, 1)
    (> 0: the object is visible); obj_ptr (N, C) the object pointer to store in memory.
    """

    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor | None
    iou_scores: torch.Tensor
    object_score_logits: torch.Tensor
    obj_ptr: torch.Tensor
