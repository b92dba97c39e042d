"""Per-object tracker memory with fixed caps: nothing here grows with the length of the stream.

The official tracker keeps every frame's memory in `output_dict` and picks from it on each frame
(docs/tracker.md, "API"; docs/video.md, "Per frame"). For a forward-only stream
the picks only ever reach a bounded window, so we keep exactly what can still be picked:

* up to `max_cond_frames` conditioning memories (spawn, refinements, re-conditionings). The
  official `select_closest_cond_frames` picks the closest before and after, then the nearest;
  on a forward stream that is always the most recent ones, so the oldest is evicted.
* recent non-conditioning memories:
  - with memory selection (default, official `frame_filter`): scanning back from t-1, the frames
    whose `eff_iou_score` > threshold, at most `max_object_pointers - 1` of them, plus t-1
    always. A ring of the last 15 such frames plus the latest frame is all that can be picked.
  - without it (HF `Sam3TrackerVideoModel`): frames t-1 ... t-15, a ring of 15.
  The last `num_recent` picks are spatial memories; the picks are also object pointers.

`MemoryBank.read(frame_index)` returns a `MemoryView`: which entries the tracker attends to and
with which temporal offsets, in the official concatenation order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch


class ProjectionCache:
    """A memory's keys and values as one tracker projected them (model/tracker/memory_kv.py):
    filled on the entry's first read as a spatial memory, dropped by its bank once it can no
    longer be one. `owner` names the tracker (its weights), so another tracker recomputes."""

    __slots__ = ("owner", "keys", "values")

    def __init__(self) -> None:
        self.owner: object | None = None
        self.keys: torch.Tensor | None = None  # layers x h*w x C
        self.values: torch.Tensor | None = None

    def get(self, owner: object) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.owner is not owner or self.keys is None or self.values is None:
            return None
        return self.keys, self.values

    def put(self, owner: object, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.owner, self.keys, self.values = owner, keys, values

    def clear(self) -> None:
        self.owner = self.keys = self.values = None


@dataclass(frozen=True, eq=False)
class MemoryEntry:
    """One frame's memory of one object, as the tracker's memory encoder produced it.

    `features` (C_mem, h, w) is the encoded mask memory; `pointer` (C,) the object pointer;
    `score` the official `eff_iou_score` of that frame (object-score x predicted IoU) that
    memory selection filters on. Identity comparison (eq=False): entries are unique per frame.
    """

    frame_index: int
    features: torch.Tensor
    pointer: torch.Tensor
    score: float
    is_cond: bool
    cache: ProjectionCache = field(default_factory=ProjectionCache, repr=False)


class MemoryView(NamedTuple):
    """What one object attends to on one frame.

    `spatial`: (offset, entry) pairs; offset 0 marks a conditioning memory (the tracker uses
    `maskmem_tpos_enc[offset - 1]`, i.e. the last row for 0). `pointers`: (temporal distance,
    entry) pairs for object pointers, normalised by the tracker with `max_object_pointers - 1`.
    """

    spatial: tuple[tuple[int, MemoryEntry], ...]
    pointers: tuple[tuple[int, MemoryEntry], ...]
    slots: tuple[int, int] = (0, 0)  # the most (spatial, pointers) the bank's caps allow


@dataclass(frozen=True)
class MemoryCaps:
    max_cond_frames: int = 4
    num_recent: int = 6  # tracker num_maskmem - 1
    max_object_pointers: int = 16
    use_memory_selection: bool = True
    selection_threshold: float = 0.01
    clear_around_condition: bool = True


class MemoryBank:
    """One object's bounded memory. `add` after each frame's memory encoding, `read` before tracking."""

    def __init__(self, caps: MemoryCaps) -> None:
        if caps.max_cond_frames < 1 or caps.num_recent < 0 or caps.max_object_pointers < 1:
            raise ValueError(f"memory caps must be positive: {caps}")
        self.caps = caps
        history = max(caps.max_object_pointers - 1, caps.num_recent)
        self._cond: deque[MemoryEntry] = deque(maxlen=caps.max_cond_frames)  # ascending frames
        self._recent: deque[MemoryEntry] = deque(maxlen=history)  # ascending frames
        self._latest: MemoryEntry | None = None
        self._cond_added = 0  # ever; only "more than the cap" matters (selection order)

    # --- writing -----------------------------------------------------------------------------

    def add(self, entry: MemoryEntry) -> None:
        """Store this frame's memory. Frames must arrive in increasing order."""
        if self._latest is not None and entry.frame_index <= self._latest.frame_index:
            raise ValueError(
                f"memory for frame {entry.frame_index} after frame {self._latest.frame_index}"
            )
        if entry.is_cond:
            if self.caps.clear_around_condition:
                self._clear_recent_after(entry.frame_index - (self.caps.num_recent + 1))
            if len(self._cond) == self._cond.maxlen:
                self._demote(self._cond[0])
            self._cond.append(entry)
            self._cond_added += 1
        elif not self.caps.use_memory_selection or entry.score > self.caps.selection_threshold:
            self._recent.append(entry)
        self._latest = entry

    def _demote(self, evicted: MemoryEntry) -> None:
        """An evicted conditioning memory still counts as an ordinary one where it is recent
        (official: `unselected_cond_outputs` are looked up like non-conditioning outputs)."""
        if not self.caps.use_memory_selection:
            kept = [e for e in self._recent if e.frame_index < evicted.frame_index]
            later = [e for e in self._recent if e.frame_index > evicted.frame_index]
            self._recent.clear()
            self._recent.extend([*kept, evicted, *later])

    def _clear_recent_after(self, first_frame: int) -> None:
        """Drop non-conditioning memories from `first_frame` on (official
        `clear_non_cond_mem_around_input`: a new prompt makes nearby memories stale)."""
        kept = [e for e in self._recent if e.is_cond or e.frame_index < first_frame]
        self._recent.clear()
        self._recent.extend(kept)
        if (
            self._latest is not None
            and not self._latest.is_cond
            and self._latest.frame_index >= first_frame
        ):
            self._latest = None

    # --- reading -----------------------------------------------------------------------------

    @property
    def has_memory(self) -> bool:
        return len(self._cond) > 0

    def sizes(self) -> tuple[int, int]:
        """(conditioning, recent) entries held: bounded by the caps."""
        return len(self._cond), len(self._recent) + (self._latest_outside_recent() is not None)

    def _latest_outside_recent(self) -> MemoryEntry | None:
        latest = self._latest
        if latest is None or latest.is_cond or any(e is latest for e in self._recent):
            return None
        return latest

    def read(self, frame_index: int) -> MemoryView:
        """The memories to attend to when tracking `frame_index` (after every stored frame)."""
        if not self._cond:
            raise ValueError("an object needs a conditioning memory before it can be tracked")
        cond = list(self._cond)
        if self._cond_added > self.caps.max_cond_frames:
            cond.reverse()  # once over the cap the official selection lists the closest first
        spatial: list[tuple[int, MemoryEntry]] = [(0, e) for e in cond]
        pointers: list[tuple[int, MemoryEntry]] = [(frame_index - e.frame_index, e) for e in cond]
        picks = self._picks(frame_index, selected=cond)  # oldest first; None = nothing there

        # spatial: the last num_recent picks, oldest first, offset = rank from the end
        for rank in range(min(self.caps.num_recent, len(picks)), 0, -1):
            entry = picks[-rank]
            if entry is not None:
                spatial.append((rank, entry))
        # pointers: newest first; with selection the official rule stops before the oldest pick
        last_rank = len(picks) - 1 if self.caps.use_memory_selection else len(picks)
        for rank in range(1, min(last_rank, self.caps.max_object_pointers - 1) + 1):
            entry = picks[-rank]
            if entry is not None:
                distance = (
                    rank if self.caps.use_memory_selection else frame_index - entry.frame_index
                )
                pointers.append((distance, entry))
        self._drop_projections({id(e) for _, e in spatial})
        caps = self.caps
        slots = (
            caps.max_cond_frames + caps.num_recent,
            caps.max_cond_frames + caps.max_object_pointers - 1,
        )
        return MemoryView(spatial=tuple(spatial), pointers=tuple(pointers), slots=slots)

    def _drop_projections(self, keep: set[int]) -> None:
        """Free the cached keys / values of entries that are not spatial memories now: older
        ones only move further from the spatial window (a cleared window is recomputed)."""
        for entry in (*self._cond, *self._recent, self._latest):
            if entry is not None and id(entry) not in keep:
                entry.cache.clear()

    def _picks(self, frame_index: int, selected: list[MemoryEntry]) -> list[MemoryEntry | None]:
        def usable(entry: MemoryEntry | None) -> MemoryEntry | None:
            return None if entry is None or any(entry is s for s in selected) else entry

        if not self.caps.use_memory_selection:
            # frames t-15 ... t-1 by position: a missing frame leaves a hole
            by_frame = {e.frame_index: e for e in self._recent}
            if self._latest is not None:
                by_frame.setdefault(self._latest.frame_index, self._latest)
            window = max(self.caps.max_object_pointers - 1, self.caps.num_recent)
            return [usable(by_frame.get(frame_index - k)) for k in range(window, 0, -1)]

        recent: list[MemoryEntry | None] = list(self._recent)
        picks = recent[-(self.caps.max_object_pointers - 1) :]
        previous = (
            self._latest
            if self._latest is not None and self._latest.frame_index == frame_index - 1
            else None
        )
        if previous is None or not any(previous is e for e in picks):
            picks.append(usable(previous))  # t-1 is always included, even when it holds nothing
        return picks


class MemoryBatch(NamedTuple):
    """Padded memories of B objects (see `stack_views`)."""

    features: torch.Tensor  # B x S x C_mem x h x w
    offsets: torch.Tensor  # B x S long: 0 = conditioning, k = k-th most recent pick
    valid: torch.Tensor  # B x S bool
    pointers: torch.Tensor  # B x P x C
    pointer_distances: torch.Tensor  # B x P float
    pointer_valid: torch.Tensor  # B x P bool
    # the views the batch was stacked from: the tracker then reads their cached projections
    views: tuple[MemoryView, ...] | None = None

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The six tensors (without `views`), e.g. to move or index them all."""
        return (
            self.features,
            self.offsets,
            self.valid,
            self.pointers,
            self.pointer_distances,
            self.pointer_valid,
        )


def stack_views(views: list[MemoryView]) -> MemoryBatch:
    """Pad the views of B objects into one batch for a single tracker call.

    Returns features (B, S, C_mem, h, w), offsets (B, S) long, valid (B, S) bool for spatial
    memories and pointers (B, P, C), pointer distances (B, P) float, pointer_valid (B, P) bool,
    and the views themselves. Padding slots hold zeros and are masked out of attention. One
    stack per tensor and one upload of the slot table (no per-memory copies).
    """
    if not views:
        raise ValueError("stack_views needs at least one view")
    first = views[0].spatial[0][1]
    b = len(views)
    s = max(len(v.spatial) for v in views)
    p = max(len(v.pointers) for v in views)
    zero_feat = first.features.new_zeros(first.features.shape)
    zero_ptr = first.pointer.new_zeros(first.pointer.shape)
    feats: list[torch.Tensor] = []
    ptrs: list[torch.Tensor] = []
    for view in views:
        feats += [e.features for _, e in view.spatial] + [zero_feat] * (s - len(view.spatial))
        ptrs += [e.pointer for _, e in view.pointers] + [zero_ptr] * (p - len(view.pointers))
    offsets, valid, distances, ptr_valid = slot_table(views, s, p, first.features.device)
    return MemoryBatch(
        features=torch.stack(feats).reshape(b, s, *first.features.shape),
        offsets=offsets,
        valid=valid,
        pointers=torch.stack(ptrs).reshape(b, p, *first.pointer.shape),
        pointer_distances=distances,
        pointer_valid=ptr_valid,
        views=tuple(views),
    )


def slot_table(
    views: Sequence[MemoryView], s: int, p: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """offsets (B, S) long, valid (B, S) bool, pointer distances (B, P) float, pointer_valid
    (B, P) bool of the views padded to S and P slots: built on the host, one upload."""
    rows = []
    for view in views:
        pad_s, pad_p = s - len(view.spatial), p - len(view.pointers)
        rows.append(
            [o for o, _ in view.spatial]
            + [0] * pad_s
            + [1] * len(view.spatial)
            + [0] * pad_s
            + [d for d, _ in view.pointers]
            + [0] * pad_p
            + [1] * len(view.pointers)
            + [0] * pad_p
        )
    table = upload(torch.tensor(rows, dtype=torch.long).reshape(len(views), 2 * (s + p)), device)
    return (
        table[:, :s],
        table[:, s : 2 * s].bool(),
        table[:, 2 * s : 2 * s + p].float(),
        table[:, 2 * s + p :].bool(),
    )


def upload(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on `device` without a host sync: through pinned memory and a
    non-blocking copy on CUDA (the copy is ordered on the stream like any kernel)."""
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
