"""Export a tracker's durable state to plain numpy, and restore it into a fresh tracker.

`export_state` keeps what cannot be re-detected (model/snapshot.py): concepts by id, the next
object and concept IDs, and per live object its ID, concept, last visible low-res mask and box,
latest object pointer and publication state. Memory banks are not exported (megabytes per
object): a restored tracker re-detects its objects and gives them back their IDs.

`restore_state` gives a fresh tracker the concepts (same ids), the frame counters and the next
IDs, and swaps its `Lifecycle` for a `RestoringLifecycle` holding the snapshot's objects:

* a detection that would spawn a new object first looks for a snapshot object of its concept
  whose box it overlaps with IoU >= `assoc_iou_thresh` (the loop's detection-to-track threshold;
  the best overlap wins); if there is one, the new track takes that object's ID instead of a new
  one, keeps its published state (no second started event) and, if it was confirmed, skips the
  hot-start window it already passed;
* IDs from the snapshot's `next_object_id` on are handed out to everything else, so none is reused;
* snapshot objects no detection took back within the usual gap tolerance (`gap_tolerance_s` of
  stream clock, counted from the restore: the outage itself is not held against them) end as
  `lost`, with an ended event if they had been published.

Pending snapshot objects are exported again until they are taken back or end, so a second
failover soon after the first loses nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model.nn.box_ops import box_iou, masks_to_boxes
from model.snapshot import ObjectSnapshot, TrackerSnapshot
from model.tracker.memory_bank import MemoryBank, MemoryCaps
from model.types import EndReason, ObjectEndedEvent
from model.video.lifecycle import Lifecycle, Track
from model.video.reassociation import Anchor


@dataclass
class RestoringLifecycle(Lifecycle):
    """A `Lifecycle` that first hands back the IDs of a restored snapshot (module docstring)."""

    restored: dict[int, ObjectSnapshot] = field(default_factory=dict)  # not yet taken back
    boxes: dict[int, torch.Tensor] = field(default_factory=dict)  # their boxes, model mask px
    expires_at: int = 0  # frame from which the ones left end as lost
    skip_window: set[int] = field(default_factory=set)  # taken back confirmed: no hot-start

    def spawn(
        self,
        dormant_id: int | None,
        concept_id: int,
        frame_index: int,
        score: float,
        box: torch.Tensor,
        caps: MemoryCaps,
        clock_s: float,
    ) -> Track:
        match = self._match(concept_id, box) if dormant_id is None else None
        if match is None:
            return super().spawn(dormant_id, concept_id, frame_index, score, box, caps, clock_s)
        old = self.restored.pop(match)
        self.boxes.pop(match)
        if old.confirmed:
            self.skip_window.add(match)
        return Track(
            match,
            concept_id,
            frame_index,
            score,
            MemoryBank(caps),
            clock_s,
            anchor=Anchor(frame_index, box),
            published=old.published,
        )

    def open_window(self, track: Track) -> None:
        if track.object_id in self.skip_window:
            self.skip_window.discard(track.object_id)
            return
        super().open_window(track)

    def expire(self, frame_index: int, everything: bool = False) -> list[ObjectEndedEvent]:
        events = super().expire(frame_index, everything)
        if self.restored and (everything or frame_index >= self.expires_at):
            for object_id in sorted(self.restored):
                old = self.restored.pop(object_id)
                self.boxes.pop(object_id)
                if old.published:
                    events.append(ObjectEndedEvent(object_id=object_id, reason=EndReason.LOST))
        return events

    def _match(self, concept_id: int, box: torch.Tensor) -> int | None:
        """The snapshot object of `concept_id` that `box` overlaps best, if enough."""
        candidates = [oid for oid, o in self.restored.items() if o.concept_id == concept_id]
        if not candidates:
            return None
        boxes = torch.stack([self.boxes[oid] for oid in candidates]).to(box.device, box.dtype)
        ious = box_iou(box[None], boxes)[0]
        best = int(ious.argmax())
        return candidates[best] if float(ious[best]) >= self.config.assoc_iou_thresh else None


def export_state(tracker: Any) -> TrackerSnapshot:
    """A `VideoTracker`'s durable state as plain numpy (module docstring; typed `Any`: importing
    VideoTracker here would be an import cycle)."""
    life = tracker._lifecycle
    objects = []
    for object_id in sorted(tracker._tracks):
        track = tracker._tracks[object_id]
        if track.last_mask is None:
            continue  # never visible: nothing to find it by (its ID stays used: next_object_id)
        mask = track.last_mask.bool()
        box = masks_to_boxes(mask[None])[0]
        objects.append(
            ObjectSnapshot(
                object_id=object_id,
                concept_id=track.concept_id,
                score=float(track.spawn_score),
                box_xyxy=_xyxy(box),
                mask=mask.cpu().numpy(),
                pointer=_latest_pointer(track.bank, tracker.frame_index),
                last_seen_s=float(track.last_seen_s),
                published=track.published,
                confirmed=object_id not in life.windows,
            )
        )
    if isinstance(life, RestoringLifecycle):  # not yet taken back: still the stream's objects
        objects += list(life.restored.values())
    return TrackerSnapshot(
        frame_index=tracker._frame_index,
        clock_s=tracker._clock_s,
        next_object_id=life.next_id,
        next_concept_id=tracker._next_concept_id,
        mask_size=tracker._model.mask_size,
        concepts=dict(tracker._concepts),
        objects=tuple(sorted(objects, key=lambda o: o.object_id)),
    )


def restore_state(tracker: Any, snapshot: TrackerSnapshot) -> None:
    """Give a fresh tracker `snapshot`'s concepts, counters and objects (module docstring)."""
    if tracker._frame_index or tracker._concepts or tracker._tracks or tracker._pending_prompts:
        raise ValueError(
            "restore_state needs a fresh tracker (no frames, concepts or objects yet):"
            " build a new VideoTracker for the restored stream"
        )
    for concept_id, concept in sorted(snapshot.concepts.items()):
        if concept_id >= snapshot.next_concept_id:
            raise ValueError(
                f"snapshot concept {concept_id} is not below its next concept id"
                f" {snapshot.next_concept_id}"
            )
        tracker._concept_prompts[concept_id] = tracker._model.encode_concept(concept)
        tracker._concepts[concept_id] = concept
    tracker._next_concept_id = snapshot.next_concept_id
    cfg = tracker.config
    wait = max(1, math.ceil(cfg.gap_tolerance_s * cfg.nominal_fps))
    life = RestoringLifecycle(
        cfg, next_id=snapshot.next_object_id, expires_at=snapshot.frame_index + wait
    )
    side = tracker._model.mask_size
    for obj in snapshot.objects:
        if obj.object_id >= snapshot.next_object_id:
            raise ValueError(
                f"snapshot object {obj.object_id} is not below its next object id"
                f" {snapshot.next_object_id}"
            )
        scale = side / max(obj.mask.shape[-1], 1)  # the snapshot's masks may be smaller
        life.restored[obj.object_id] = obj
        life.boxes[obj.object_id] = torch.tensor(obj.box_xyxy, dtype=torch.float32) * scale
    tracker._lifecycle = life
    tracker._frame_index = snapshot.frame_index
    tracker._clock_s = snapshot.clock_s


def _latest_pointer(bank: MemoryBank, frame_index: int) -> np.ndarray:
    """The object pointer of the newest memory the bank would attend to (empty if none)."""
    if not bank.has_memory:
        return np.zeros(0, dtype=np.float32)
    view = bank.read(frame_index)
    entries = [entry for _, entry in (*view.spatial, *view.pointers)]
    latest = max(entries, key=lambda entry: entry.frame_index)
    return latest.pointer.detach().float().reshape(-1).cpu().numpy()


def _xyxy(box: torch.Tensor) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box.tolist())
    return (x0, y0, x1, y1)


__all__ = ["RestoringLifecycle", "export_state", "restore_state"]
