"""The plain-data state a `VideoTracker` exports and restores: numpy arrays, never tensors.

`VideoTracker.export_state()` returns a `TrackerSnapshot`; `VideoTracker.restore_state(snapshot)`
gives a fresh tracker its concepts, its next IDs and its objects back (model/video/snapshot.py
says how objects are re-associated). The engine turns these into the wire form
(protocols/snapshot.py) and stores them; nothing here knows about either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from model.types import Concept


@dataclass(frozen=True, eq=False)
class ObjectSnapshot:
    """One live object. `mask` is its last visible (m, m) bool mask at the model's low-res mask
    size, `box_xyxy` that mask's box in the same pixels; `pointer` its latest object pointer."""

    object_id: int
    concept_id: int | None  # None: added by clicks / a box (cannot be re-detected)
    score: float
    box_xyxy: tuple[float, float, float, float]
    mask: npt.NDArray[np.bool_]
    pointer: npt.NDArray[np.float32]  # (C,); empty if it had none
    last_seen_s: float  # stream clock when it was last visible
    published: bool  # its started event was sent
    confirmed: bool  # past its hot-start window


@dataclass(frozen=True, eq=False)
class TrackerSnapshot:
    """What a tracker cannot re-detect: concepts (by id), the next IDs, and its live objects."""

    frame_index: int  # frames processed
    clock_s: float  # stream clock
    next_object_id: int  # IDs below this were handed out: never to be used again
    next_concept_id: int
    mask_size: int  # m: the side of every object's mask when exported
    concepts: Mapping[int, Concept] = field(default_factory=dict)
    objects: tuple[ObjectSnapshot, ...] = ()


__all__ = ["ObjectSnapshot", "TrackerSnapshot"]
