"""Typed values that cross model/ boundaries: prompts, detections and one frame of tracking.

Everything here is plain data (frozen dataclasses and enums), importable without torch. Tensors
stay on the device that produced them; `TrackedObject.mask` is a CPU bool array at the input
image size so callers outside the model (the engine, tests) never need to know about devices.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch-free at run time: the engine imports these types without the networks
    import torch


class ObjectState(enum.Enum):
    """Publication state of a tracked object (mirrors the wire enum in protocols/)."""

    TENTATIVE = "tentative"  # still inside its hot-start window; may be removed
    CONFIRMED = "confirmed"  # survived the hot-start window


class EndReason(enum.Enum):
    """Why an object stopped being tracked."""

    LOST = "lost"  # not seen for longer than the gap tolerance / empty for too long
    REMOVED = "removed"  # removed by the user or by the hot-start rules
    SUPPRESSED = "suppressed"  # suppressed as a duplicate / overlap of an older object
    STREAM_ENDED = "stream_ended"  # the stream ended while the object was alive


@dataclass(frozen=True)
class BoxPrompt:
    """One exemplar or refinement box in input-image pixels, xyxy; `positive=False` is a negative."""

    xyxy: tuple[float, float, float, float]
    positive: bool = True


@dataclass(frozen=True)
class PointPrompt:
    """One click in input-image pixels; `positive=False` is a background click."""

    xy: tuple[float, float]
    positive: bool = True


@dataclass(frozen=True)
class ConceptThresholds:
    """Per-concept score thresholds; None means the tracker config's default."""

    detection: float | None = None  # keep detections with prob > this
    new_object: float | None = None  # spawn objects only from detections with prob >= this


@dataclass(frozen=True)
class Concept:
    """A prompt the detector looks for on every frame: text, exemplar boxes, or both."""

    text: str | None = None
    exemplars: tuple[BoxPrompt, ...] = ()
    thresholds: ConceptThresholds = ConceptThresholds()
    max_objects: int | None = (
        None  # live objects of this concept at most; None: only the stream cap
    )

    def __post_init__(self) -> None:
        if not self.text and not self.exemplars:
            raise ValueError("a concept needs a text, exemplar boxes, or both")
        if self.max_objects is not None and self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1 or None, got {self.max_objects}")


@dataclass(frozen=True)
class Detections:
    """Detector output for one image and one concept, after thresholding, at the input image size.

    N detections: scores (N,) float, boxes (N, 4) xyxy pixels, masks (N, H, W) bool on CPU,
    mask_logits (N, h, w) float on the model's device at the model's mask resolution.
    `presence` is the image-level probability that the concept is present at all.
    """

    scores: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    mask_logits: torch.Tensor
    presence: float

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class TrackedObject:
    """One object on one frame. `mask` is (H, W) bool at the input image size, on CPU."""

    object_id: int
    concept_id: int | None  # None for objects added by clicks/boxes rather than by a concept
    score: float
    box_xyxy: tuple[float, float, float, float]
    mask: np.ndarray
    state: ObjectState


@dataclass(frozen=True)
class ObjectStartedEvent:
    object_id: int
    concept_id: int | None


@dataclass(frozen=True)
class ObjectEndedEvent:
    object_id: int
    reason: EndReason


@dataclass(frozen=True)
class FrameTrack:
    """Everything the tracker knows about one frame, returned by `VideoTracker.step` at that frame.

    `objects` holds the objects to publish (confirmed ones, plus tentative ones when
    `confirm_delay` allows). `started`/`ended` are this frame's lifecycle changes; an object that
    starts is reported in `started` on the frame it is first published.
    """

    frame_index: int
    pts: int | None
    width: int
    height: int
    objects: tuple[TrackedObject, ...] = ()
    started: tuple[ObjectStartedEvent, ...] = ()
    ended: tuple[ObjectEndedEvent, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage name -> milliseconds
    # concept id -> detections that would have started an object but met a cap (object_caps.py)
    capped: dict[int, int] = field(default_factory=dict)
