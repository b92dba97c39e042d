"""Per-object bookkeeping of one stream: IDs, publication state, lifecycle events.

A `Track` is everything the loop remembers about one live object; `Lifecycle` hands out IDs
(per stream, increasing, never reused) and turns per-frame facts into the events a client sees:

* an object is *published* once it is `confirm_delay` frames old and its mask is non-empty; the
  frame it is first published carries its `ObjectStartedEvent`;
* it is `tentative` while inside its hot-start window (it may still be removed), `confirmed`
  after; objects added by clicks or boxes are confirmed at once;
* it ends with `removed` (user, concept removed, hot-start: unmatched), `suppressed` (hot-start:
  duplicate of an older object), `lost` (unseen for longer than the gap tolerance) or
  `stream_ended`. Only objects that were published get an `ObjectEndedEvent`;
* with `VideoConfig.hotstart_revive_frames` an object hot-start removed as unmatched is first
  *dormant*: out of the loop, unpublished, its ID held for that many frames in case a detection
  finds it again where it should be (a real object the detector missed while it was hidden);
  its `removed` event comes when the wait runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.config import VideoConfig
from model.tracker.memory_bank import MemoryBank, MemoryCaps
from model.types import EndReason, ObjectEndedEvent, ObjectStartedEvent, ObjectState
from model.video.association import HotStart
from model.video.mask_rules import NEVER_OCCLUDED
from model.video.reassociation import Anchor


@dataclass(eq=False)
class Track:
    """One live object of one stream (mutable, owned by its `VideoTracker`)."""

    object_id: int
    concept_id: int | None  # None: added by clicks / a box
    first_frame: int
    spawn_score: float  # detection probability at spawn (the official reported score)
    bank: MemoryBank
    last_seen_s: float
    last_occluded: int = NEVER_OCCLUDED
    last_mask: torch.Tensor | None = None  # (m, m) bool, last non-empty mask (gap re-association)
    anchor: Anchor | None = None  # where a detection last confirmed it (re-anchoring)
    published: bool = False

    @property
    def group(self) -> int:
        """Association / non-overlap group: the concept, or a group of its own for user objects."""
        return self.concept_id if self.concept_id is not None else -1 - self.object_id

    def trade_memory(self, other: Track) -> None:
        """Swap what the tracker remembers (memory bank, last mask and occlusion) with `other`'s,
        each keeping its identity (ID, anchor, age): their tracks had traded objects."""
        self.bank, other.bank = other.bank, self.bank
        self.last_mask, other.last_mask = other.last_mask, self.last_mask
        self.last_occluded, other.last_occluded = other.last_occluded, self.last_occluded


@dataclass
class Lifecycle:
    """ID allocation, hot-start windows and publication rules of one stream."""

    config: VideoConfig
    next_id: int = 0
    windows: dict[int, HotStart] = field(default_factory=dict)  # objects inside hot-start
    dormant: dict[int, Dormant] = field(default_factory=dict)  # removed objects that may revive

    def allocate_id(self) -> int:
        object_id = self.next_id
        self.next_id += 1
        return object_id

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
        """A detector-spawned object at `box`: a new ID, or the dormant object `dormant_id`
        come back (its ID and its anchor's motion; no second started event)."""
        woken = None if dormant_id is None else self.wake(dormant_id)
        if woken is None or woken.anchor is None:
            object_id, anchor, published = self.allocate_id(), Anchor(frame_index, box), False
        else:
            object_id, published = woken.object_id, woken.published
            anchor = woken.anchor.moved_to(frame_index, box)
        return Track(
            object_id,
            concept_id,
            frame_index,
            score,
            MemoryBank(caps),
            clock_s,
            anchor=anchor,
            published=published,
        )

    def open_window(self, track: Track) -> None:
        """Start the hot-start window of a detector-spawned object (none when the delay is 0)."""
        if self.config.hotstart_delay > 0:
            self.windows[track.object_id] = HotStart(first_frame=track.first_frame)

    def close(self, object_id: int) -> None:
        self.windows.pop(object_id, None)

    def state(self, track: Track) -> ObjectState:
        if track.object_id in self.windows:
            return ObjectState.TENTATIVE
        return ObjectState.CONFIRMED

    def may_publish(self, track: Track, frame_index: int) -> bool:
        return frame_index - track.first_frame >= self.config.confirm_delay

    def publish(self, track: Track) -> ObjectStartedEvent | None:
        """Mark `track` published; the started event on its first publication, else None."""
        if track.published:
            return None
        track.published = True
        return ObjectStartedEvent(object_id=track.object_id, concept_id=track.concept_id)

    def end(self, track: Track, reason: EndReason) -> ObjectEndedEvent | None:
        """Forget `track`; the ended event if a client ever saw it, else None."""
        self.close(track.object_id)
        if not track.published:
            return None
        return ObjectEndedEvent(object_id=track.object_id, reason=reason)

    def is_lost(self, track: Track, now_s: float) -> bool:
        return now_s - track.last_seen_s > self.config.gap_tolerance_s

    # --- dormant objects ---------------------------------------------------------------------

    def may_rest(self, track: Track) -> bool:
        """Whether a hot-start removal (unmatched) of `track` makes it dormant, not ended."""
        return (
            self.config.hotstart_revive_frames > 0
            and track.concept_id is not None
            and track.anchor is not None
        )

    def rest(self, track: Track, frame_index: int) -> None:
        self.close(track.object_id)
        self.dormant[track.object_id] = Dormant(track, frame_index)

    @property
    def dormant_tracks(self) -> dict[int, Track]:
        """object id -> track of every dormant object."""
        return {object_id: rest.track for object_id, rest in self.dormant.items()}

    def wake(self, object_id: int) -> Track | None:
        """Take a dormant object out of the waiting room (None if it is not there)."""
        dormant = self.dormant.pop(object_id, None)
        return None if dormant is None else dormant.track

    def expire(self, frame_index: int, everything: bool = False) -> list[ObjectEndedEvent]:
        """End the dormant objects whose wait ran out at `frame_index` (all with `everything`)."""
        wait = self.config.hotstart_revive_frames
        events = []
        for object_id in sorted(self.dormant):
            if everything or frame_index - self.dormant[object_id].since >= wait:
                event = self.end(self.dormant.pop(object_id).track, EndReason.REMOVED)
                if event is not None:
                    events.append(event)
        return events


@dataclass(frozen=True)
class Dormant:
    track: Track
    since: int  # the frame hot-start removed it on
