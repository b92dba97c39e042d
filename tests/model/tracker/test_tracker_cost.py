"""The tracker's cost paths give the reference outputs: cached memory projections, real RoPE,
fixed slots and object buckets; a steady step reads nothing back from the device."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from model.config import CONFIGS
from model.nn.rope import apply_rotary, axial_rope_freqs, axial_rope_table, rotate
from model.tracker.memory_bank import MemoryBank, MemoryBatch, MemoryCaps, MemoryEntry, stack_views
from model.tracker.memory_kv import bucket_size
from model.tracker.tracker import Tracker
from model.tracker.types import TrackerFeatures

CONFIG = CONFIGS["tiny"].tracker
G, C = CONFIG.grid_size, CONFIG.d_model
# small caps so every cap is hit within a few frames
CAPS = MemoryCaps(max_cond_frames=2, num_recent=CONFIG.num_maskmem - 1, max_object_pointers=4)
SYNCING = {"_local_scalar_dense", "nonzero", "masked_select", "item", "unique", "_unique2"}


def make_tracker(**changes: object) -> Tracker:
    torch.manual_seed(0)
    model = Tracker(dataclasses.replace(CONFIG, **changes)).eval()  # type: ignore[arg-type]
    with torch.no_grad():  # random init leaves several tensors ~0; spread them out
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def frame_features(tracker: Tracker, t: int) -> TrackerFeatures:
    g = torch.Generator().manual_seed(100 + t)
    maps = [torch.randn(1, C, s * G, s * G, generator=g) for s in (4, 2, 1)]
    return tracker.prepare_features(maps)


def clone_like(other: Tracker, **changes: object) -> Tracker:
    model = Tracker(dataclasses.replace(CONFIG, **changes)).eval()  # type: ignore[arg-type]
    model.load_state_dict(other.state_dict())
    return model


@torch.no_grad()
def stream(trackers: list[Tracker], num_objects: int, frames: int) -> list[list[MemoryBatch]]:
    """Run every tracker's `track_step` on the same memories for `frames` frames; the banks
    follow the first tracker (a re-conditioning on frame 4, an occluded object on frame 5).
    Returns per frame each tracker's output tuple (masks, ious, scores, pointers)."""
    banks = [MemoryBank(CAPS) for _ in range(num_objects)]
    ref = trackers[0]
    outs = []
    for t in range(frames):
        feats = frame_features(ref, t)
        if t == 0:
            g = torch.Generator().manual_seed(7)
            logits = torch.randn(num_objects, 1, 4 * G, 4 * G, generator=g)
            scores = torch.ones(num_objects, 1)
            pointers = torch.randn(num_objects, C, generator=g)
        else:
            batch = stack_views([b.read(t) for b in banks])
            steps = [tr.track_step(feats, batch) for tr in trackers]
            outs.append(steps)
            logits, scores, pointers = (
                steps[0].low_res_masks,
                steps[0].object_score_logits,
                steps[0].obj_ptr,
            )
            if t == 5:
                scores = scores.clone()
                scores[0] = -1.0  # judged absent: no_obj_embed_spatial, low selection score
        memories = ref.encode_memory(feats, logits, scores)
        for i, bank in enumerate(banks):
            cond = t == 0 or (t == 4 and i == 1)
            score = float(scores[i, 0] > 0)
            bank.add(MemoryEntry(t, memories[i], pointers[i], score, cond))
    return outs


def assert_same(a: object, b: object, atol: float) -> None:
    for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
        if x is None:
            assert y is None
            continue
        assert x.shape == y.shape
        assert (x - y).abs().max().item() <= atol


def test_cached_projections_equal_recomputation_over_frames() -> None:
    cached = make_tracker()
    recomputed = clone_like(cached, cache_memory_kv=False)
    outs = stream([cached, recomputed], num_objects=3, frames=10)
    for cached_out, recomputed_out in outs:
        assert_same(cached_out, recomputed_out, atol=1e-5)


def test_padded_buckets_and_fixed_slots_give_the_same_outputs() -> None:
    plain = make_tracker()
    static = clone_like(plain, static_shapes=True)
    outs = stream([plain, static], num_objects=3, frames=8)  # 3 objects -> a bucket of 4
    for plain_out, static_out in outs:
        assert_same(plain_out, static_out, atol=1e-5)
        assert torch.equal(plain_out.low_res_masks > 0, static_out.low_res_masks > 0)


def test_fixed_slots_and_buckets_keep_shapes_constant() -> None:
    tracker = make_tracker(static_shapes=True)
    banks = [MemoryBank(CAPS) for _ in range(3)]
    feats = frame_features(tracker, 0)
    memories = tracker.encode_memory(feats, torch.randn(3, 1, 4 * G, 4 * G), torch.ones(3, 1))
    shapes = set()
    for t in range(6):
        for i, bank in enumerate(banks):
            bank.add(MemoryEntry(t, memories[i], torch.randn(C), 1.0, t == 0))
        stored = tracker.stored_memory([b.read(t + 1) for b in banks])
        shapes.add((tuple(stored.keys.shape), tuple(stored.pointers.shape)))
        assert stored.valid[3:].sum() == 0 and stored.pointer_valid[3:].sum() == 0
    assert len(shapes) == 1
    ((keys, pointers),) = shapes
    s, p = (
        CAPS.max_cond_frames + CAPS.num_recent,
        CAPS.max_cond_frames + CAPS.max_object_pointers - 1,
    )
    assert keys == (CONFIG.memory_layers, 4, s, G * G, C) and pointers == (4, p, C)
    assert [bucket_size(n) for n in (1, 2, 3, 5, 16, 17)] == [1, 2, 4, 8, 16, 32]


def test_projection_is_computed_once_per_memory() -> None:
    tracker = make_tracker()
    bank = MemoryBank(CAPS)
    feats = frame_features(tracker, 0)
    memory = tracker.encode_memory(feats, torch.randn(1, 1, 4 * G, 4 * G), torch.ones(1, 1))[0]
    first = MemoryEntry(0, memory, torch.randn(C), 1.0, True)
    bank.add(first)
    tracker.stored_memory([bank.read(1)])
    cached = first.cache.keys
    assert cached is not None
    bank.add(MemoryEntry(1, memory, torch.randn(C), 1.0, False))
    tracker.stored_memory([bank.read(2)])
    assert first.cache.keys is cached  # reused, not projected again
    other = clone_like(tracker)
    other.stored_memory([bank.read(2)])
    assert first.cache.owner is other.memory_attention  # another tracker projects its own


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_real_rope_equals_complex_rope(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 5 * 4, 16, dtype=dtype)
    freqs = axial_rope_freqs(16, 5, 4, dtype=dtype)
    table = axial_rope_table(16, 5, 4, dtype=dtype)
    assert (rotate(x, table) - apply_rotary(x, freqs)).abs().max() <= 1e-5
    assert axial_rope_table(16, 5, 4, dtype=dtype) is table  # built once
    # one table broadcasts over several grids of the same size
    grids = x.reshape(2, 3, 1, 20, 16).expand(2, 3, 4, 20, 16)
    assert rotate(grids, table).shape == grids.shape


class SyncCounter(TorchDispatchMode):
    """Counts aten ops, ops that read device data on the host, and tensors built from host data."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.syncs: list[str] = []
        self.uploads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.__name__.split(".")[0]
        self.ops += 1
        if name in SYNCING:
            self.syncs.append(name)
        if name in ("lift_fresh", "lift_fresh_copy"):
            self.uploads += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def test_a_steady_step_has_no_host_sync() -> None:
    tracker = make_tracker(static_shapes=True)
    banks = [MemoryBank(CAPS) for _ in range(3)]
    feats = frame_features(tracker, 0)
    memories = tracker.encode_memory(feats, torch.randn(3, 1, 4 * G, 4 * G), torch.ones(3, 1))
    for t in range(8):
        for i, bank in enumerate(banks):
            bank.add(MemoryEntry(t, memories[i], torch.randn(C), 1.0, t == 0))
    batch = stack_views([b.read(8) for b in banks])
    tracker.track_step(feats, batch)  # projects the memories once
    with SyncCounter() as whole:
        tracker.track_step(feats, batch)
    assert whole.syncs == [] and whole.uploads == 1  # the slot table: pinned, non-blocking
    stored = tracker.stored_memory([b.read(8) for b in banks])
    with SyncCounter() as step:
        tracker.propagate(feats, stored)
    assert step.syncs == [] and step.uploads == 0
