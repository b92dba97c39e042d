"""MemoryBank: the official memory-frame selection on a forward stream, with fixed caps."""

from __future__ import annotations

import pytest
import torch

from model.tracker.memory_bank import MemoryBank, MemoryCaps, MemoryEntry, stack_views


def entry(frame: int, score: float = 0.5, cond: bool = False) -> MemoryEntry:
    return MemoryEntry(
        frame_index=frame,
        features=torch.full((2, 3, 3), float(frame)),
        pointer=torch.full((4,), float(frame)),
        score=score,
        is_cond=cond,
    )


def frames(pairs: tuple[tuple[int, MemoryEntry], ...]) -> list[tuple[int, int]]:
    return [(k, e.frame_index) for k, e in pairs]


def test_needs_a_conditioning_memory() -> None:
    bank = MemoryBank(MemoryCaps())
    with pytest.raises(ValueError, match="conditioning"):
        bank.read(0)


def test_selection_keeps_recent_valid_frames_and_always_t_minus_1() -> None:
    bank = MemoryBank(MemoryCaps(clear_around_condition=False))
    bank.add(entry(0, cond=True))
    for t in range(1, 10):
        bank.add(entry(t, score=0.0 if t in (3, 4, 9) else 0.5))  # 3, 4, 9: occluded
    view = bank.read(10)
    # spatial: the conditioning frame (offset 0) then the last 6 picks, oldest first;
    # frame 9 (t-1) is always included although its score is 0
    assert frames(view.spatial) == [(0, 0), (6, 2), (5, 5), (4, 6), (3, 7), (2, 8), (1, 9)]
    # pointers: conditioning (distance 10) then picks newest first by rank, stopping before
    # the oldest pick (official frame_filter + `t_diff >= len(valid)` break)
    assert frames(view.pointers) == [(10, 0), (1, 9), (2, 8), (3, 7), (4, 6), (5, 5), (6, 2)]


def test_selection_bank_is_bounded_over_a_long_stream() -> None:
    caps = MemoryCaps()
    bank = MemoryBank(caps)
    bank.add(entry(0, cond=True))
    for t in range(1, 2000):
        bank.add(entry(t, score=0.5 if t % 3 else 0.0, cond=t % 100 == 0))  # re-conditioned
    cond, recent = bank.sizes()
    assert cond == caps.max_cond_frames and recent <= caps.max_object_pointers
    view = bank.read(2000)
    assert len(view.spatial) == caps.max_cond_frames + caps.num_recent
    assert len(view.pointers) <= caps.max_cond_frames + caps.max_object_pointers - 1


def test_without_selection_uses_frames_by_position() -> None:
    bank = MemoryBank(MemoryCaps(use_memory_selection=False, clear_around_condition=False))
    bank.add(entry(0, cond=True))
    for t in range(1, 20):
        bank.add(entry(t, score=0.0))  # scores do not matter here
    view = bank.read(20)
    assert frames(view.spatial) == [(0, 0)] + [(k, 20 - k) for k in range(6, 0, -1)]
    assert frames(view.pointers) == [(20, 0)] + [(k, 20 - k) for k in range(1, 16)]


def test_conditioning_frames_cap_and_order() -> None:
    bank = MemoryBank(MemoryCaps(use_memory_selection=False, clear_around_condition=False))
    for t in range(4):
        bank.add(entry(t, cond=True))
    view = bank.read(4)
    assert [e.frame_index for k, e in view.spatial if k == 0] == [0, 1, 2, 3]  # insertion order
    bank.add(entry(4, cond=True))  # fifth: the oldest leaves the conditioning set
    view = bank.read(5)
    assert [e.frame_index for k, e in view.spatial if k == 0] == [4, 3, 2, 1]  # closest first
    # ... but the evicted frame 0 is still an ordinary memory 5 frames back
    assert (5, 0) in frames(view.spatial)
    assert bank.sizes()[0] == 4


def test_new_condition_clears_nearby_recent_memories() -> None:
    bank = MemoryBank(MemoryCaps())
    bank.add(entry(0, cond=True))
    for t in range(1, 12):
        bank.add(entry(t))
    bank.add(entry(12, cond=True))  # frames 5..11 (within num_maskmem = 7) are dropped
    view = bank.read(13)
    assert [f for k, f in frames(view.spatial) if k > 0] == [1, 2, 3, 4]
    # t-1 (12) is a selected conditioning frame: its slot stays empty, ranks shift by one
    assert frames(view.spatial)[-1] == (2, 4)


def test_frames_must_increase() -> None:
    bank = MemoryBank(MemoryCaps())
    bank.add(entry(3, cond=True))
    with pytest.raises(ValueError, match="after frame 3"):
        bank.add(entry(3))


def test_stack_views_pads_and_masks() -> None:
    a, b = MemoryBank(MemoryCaps()), MemoryBank(MemoryCaps())
    a.add(entry(0, cond=True))
    b.add(entry(0, cond=True))
    for t in range(1, 4):
        a.add(entry(t))
    batch = stack_views([a.read(4), b.read(4)])
    assert batch.features.shape == (2, 4, 2, 3, 3)
    assert batch.valid.tolist() == [[True] * 4, [True, False, False, False]]
    assert batch.offsets[0].tolist() == [0, 3, 2, 1]
    assert batch.pointers.shape == (2, 3, 4)  # a: cond + ranks 1, 2 (stops before the oldest)
    assert batch.pointer_distances[0].tolist() == [4.0, 1.0, 2.0]
    assert batch.pointer_valid[1].tolist() == [True, False, False]
    assert (batch.features[1, 1:] == 0).all()
