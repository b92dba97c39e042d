"""The calls the video loop makes into the networks, as one small typed seam.

`VideoTracker` (model/video/video_tracker.py) owns the per-stream rules; everything that runs a network goes
through a `FrameModel`: one backbone pass per image, one detector pass per frame for all
concepts, one batched tracker call for all propagated objects, one for all prompted objects,
one memory-encoder call. `Sam3FrameModel` (model/video/sam3_frame_model.py) implements it on `Sam3`;
tests implement it with scripted masks. Prompts are the tracker's `ObjectPrompt` (clicks, box or
mask in model-input pixels). All masks here live on the tracker's low-resolution
grid (`mask_size`, 288 at 1008 px); logits > 0 mean foreground.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
import torch

from model.tracker.memory_bank import MemoryBatch
from model.tracker.types import ObjectPrompt
from model.types import Concept


class FrameDetections(NamedTuple):
    """One concept's raw detector output on one frame (all queries, before any threshold)."""

    scores: torch.Tensor  # (Q,) joint probability sigmoid(logit) * sigmoid(presence)
    mask_logits: torch.Tensor  # (Q, m, m) on the tracker grid
    boxes: torch.Tensor  # (Q, 4) xyxy, normalised to [0, 1]


class TrackOutput(NamedTuple):
    """Tracker output for B objects on one frame."""

    mask_logits: torch.Tensor  # (B, m, m)
    object_score_logits: torch.Tensor  # (B,) > 0: the object is visible
    iou_scores: torch.Tensor  # (B,) predicted IoU of the chosen mask
    pointers: torch.Tensor  # (B, C) object pointers for the memory bank
    # (B, H, W) logits to encode memories from when they differ from `mask_logits` (prompted
    # objects: the image-size mask, as the official tracker encodes it); None = mask_logits
    memory_logits: torch.Tensor | None = None


class FrameModel(Protocol):
    """What one stream's loop needs from the networks. Features are opaque to the loop."""

    @property
    def mask_size(self) -> int: ...

    @property
    def image_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def num_maskmem(self) -> int:
        """Temporal memory slots of the tracker (1 conditioning + recent ones)."""
        ...

    @property
    def max_object_pointers(self) -> int: ...

    def encode_images(self, images: Sequence[np.ndarray]) -> list[object]:
        """HxWx3 uint8 RGB images (any sizes) -> per-image features (one batched backbone call)."""
        ...

    def encode_concept(self, concept: Concept) -> object:
        """Prompt features of one concept, computed once and reused on every frame."""
        ...

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        """All concepts on one frame in one detector pass -> one `FrameDetections` per concept."""
        ...

    def track(self, features: object, memory: MemoryBatch) -> TrackOutput:
        """Propagate B objects to this frame from their memories (one batched call)."""
        ...

    def prompt(self, features: object, prompts: Sequence[ObjectPrompt]) -> TrackOutput:
        """Segment B objects from prompts on this frame, without memory (one batched call)."""
        ...

    def encode_memory(
        self,
        features: object,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        from_prompt: torch.Tensor,
    ) -> torch.Tensor:
        """(B, H, W) mask logits (any size) -> (B, C_mem, h, w) memories (one batched call).

        `object_score_logits` (B,) <= 0 marks an absent object (no-object embedding added);
        `from_prompt` (B,) bool marks masks from clicks (binarised first, `is_mask_from_pts`).
        """
        ...


def eff_iou_score(object_score_logits: torch.Tensor, iou_scores: torch.Tensor) -> torch.Tensor:
    """Official memory-selection score per object: (2 sigmoid(s) - 1 if s > 0 else 0) x IoU."""
    visible = torch.where(
        object_score_logits > 0,
        object_score_logits.sigmoid() * 2 - 1,
        torch.zeros_like(object_score_logits),
    )
    return visible * iou_scores
