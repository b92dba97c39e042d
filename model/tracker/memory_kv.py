"""Memory keys and values projected once, when a memory is stored, instead of on every frame.

The memory cross-attention of layer l reads, for a spatial memory m (h*w tokens of mem_dim) in
temporal slot s,

    key   = RoPE(W_k (m + grid_pos + tpos[s]) + b_k)      value = W_v m + b_v

k_proj and RoPE are linear, so the key splits into a part fixed at storage and a part that
depends only on the slot:

    key   = RoPE(W_k (m + grid_pos))  +  RoPE(W_k tpos[s] + b_k)
            `MemoryProjection.keys`       `slot_keys(...)[l, s]`: num_maskmem grids per layer

The slot is NOT fixed at storage: a recent memory is "k-th most recent" (slot k - 1) and k grows
as newer memories arrive (conditioning memories always take the last slot). So the memory keeps
the slot-free part and every frame adds the slot table row of its current offset: one add per
layer instead of a projection, a float32 RoPE round trip and a concatenation of 64-wide tokens.
Values never depend on the slot. Object pointers stay per frame (a few tokens; their temporal
position is the frame distance, which changes every frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch.nn import functional as F

from model.nn.position import sine_position_grid
from model.tracker.memory_attention import (
    MemoryAttention,
    MemoryKV,
    padding_bias,
    rotate_heads,
)
from model.tracker.memory_bank import MemoryEntry, MemoryView, slot_table


class MemoryProjection(NamedTuple):
    """E memories projected for every layer: keys and values (layers, E, h*w, C) in the model
    dtype. Keys carry RoPE and the grid position but neither k_proj's bias nor a slot."""

    keys: torch.Tensor
    values: torch.Tensor


class StoredMemory(NamedTuple):
    """B objects' memories for one steady tracker step, all on the device, fixed shapes.

    keys / values (layers, B, S, h*w, C): cached projections of each object's S spatial slots
    (zeros in padding); offsets (B, S) long (0 = conditioning; k = k-th most recent); valid
    (B, S) bool; pointers (B, P, C); pointer_distances (B, P) float; pointer_valid (B, P) bool;
    slot_keys (layers, num_maskmem, h*w, C) from `slot_keys`; padded: whether any slot is
    padding (known on the host, so an unpadded batch runs without a mask: flash-eligible).
    """

    keys: torch.Tensor
    values: torch.Tensor
    offsets: torch.Tensor
    valid: torch.Tensor
    pointers: torch.Tensor
    pointer_distances: torch.Tensor
    pointer_valid: torch.Tensor
    slot_keys: torch.Tensor
    padded: bool = True


def _grid_pos(h: int, w: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    """The memories' sine grid position (h*w, channels) in like's dtype (computed in float32,
    or float64 for float64 runs), as `memory_tokens` builds it."""
    work = torch.promote_types(like.dtype, torch.float32)
    pos = sine_position_grid(h, w, channels, device=like.device, dtype=work)
    return pos.to(like.dtype).flatten(1).transpose(0, 1)


def project_memories(attn: MemoryAttention, memories: torch.Tensor) -> MemoryProjection:
    """memories (E, mem_dim, h, w) in the model dtype -> their keys and values for every layer."""
    e, cm, h, w = memories.shape
    tokens = memories.permute(0, 2, 3, 1).reshape(e, h * w, cm)
    keyed = tokens + _grid_pos(h, w, cm, tokens)
    rope = attn.rope_table(h, w, tokens)
    keys, values = [], []
    for layer in attn.cross_layers():
        proj = layer.cross_attn_image
        keys.append(rotate_heads(F.linear(keyed, proj.k_proj.weight), rope, proj.num_heads))
        values.append(proj.v_proj(tokens))
    return MemoryProjection(torch.stack(keys), torch.stack(values))


def slot_keys(attn: MemoryAttention, tpos_enc: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """RoPE(W_k tpos[s] + b_k) on every token of the h x w grid: (layers, num_slots, h*w, C)."""
    rope = attn.rope_table(h, w, tpos_enc)
    tables = []
    for layer in attn.cross_layers():
        proj = layer.cross_attn_image
        per_slot = proj.k_proj(tpos_enc)  # num_slots x C
        grid = per_slot[:, None].expand(-1, h * w, -1)
        tables.append(rotate_heads(grid, rope, proj.num_heads))
    return torch.stack(tables)


def assemble(attn: MemoryAttention, memory: StoredMemory, pointer_pos: torch.Tensor) -> MemoryKV:
    """Every layer's keys and values for one frame: cached spatial keys + their slot's row,
    cached values, pointer tokens projected now (pointer_pos (B, P, mem_dim))."""
    _, b, s, hw, c = memory.keys.shape
    p = memory.pointers.shape[1]
    cm = pointer_pos.shape[-1]
    k = memory.pointers.shape[-1] // cm
    dtype = memory.keys.dtype
    num_slots = memory.slot_keys.shape[1]
    slot = (memory.offsets - 1) % num_slots  # B x S
    ptrs = memory.pointers.to(dtype).reshape(b, p * k, cm)  # k tokens per pointer
    ptr_pos = pointer_pos.to(dtype).repeat_interleave(k, dim=1)
    keys, values = [], []
    for i, layer in enumerate(attn.cross_layers()):
        proj = layer.cross_attn_image
        spatial = (memory.keys[i] + memory.slot_keys[i][slot]).reshape(b, s * hw, c)
        keys.append(torch.cat([spatial, proj.k_proj(ptrs + ptr_pos)], dim=1))
        values.append(torch.cat([memory.values[i].reshape(b, s * hw, c), proj.v_proj(ptrs)], dim=1))
    mask = None
    if memory.padded:
        padding = torch.cat(
            [
                (~memory.valid).repeat_interleave(hw, dim=1),
                (~memory.pointer_valid).repeat_interleave(k, dim=1),
            ],
            dim=1,
        )
        mask = padding_bias(padding, dtype)
    return MemoryKV(tuple(keys), tuple(values), mask)


def bucket_size(n: int) -> int:
    """The object-batch bucket of n objects: the next power of two (1, 2, 4, 8, 16, 32, ...)."""
    return 1 << max(n - 1, 0).bit_length()


def gather(
    attn: MemoryAttention,
    views: Sequence[MemoryView],
    slot_keys_table: torch.Tensor,
    *,
    static: bool,
) -> StoredMemory:
    """One steady step's `StoredMemory` from the banks' views.

    Spatial memories read for the first time are projected here, all in one batched call, and
    the projection is kept on the entry (`MemoryEntry.cache`) for the following frames.
    `static`: pad to the banks' fixed slot counts (`MemoryView.slots`) and the objects to their
    bucket (`bucket_size`; padding rows have no valid slot), so the shapes repeat from frame
    to frame (torch.compile, CUDA graphs); the caller keeps the first len(views) rows.
    """
    if not views:
        raise ValueError("a tracker step needs at least one object's memories")
    missing: dict[int, MemoryEntry] = {}
    for view in views:
        for _, entry in view.spatial:
            if entry.cache.get(attn) is None:
                missing[id(entry)] = entry
    if missing:
        fresh = list(missing.values())
        dtype = slot_keys_table.dtype
        projected = project_memories(attn, torch.stack([e.features for e in fresh]).to(dtype))
        for i, entry in enumerate(fresh):
            entry.cache.put(attn, projected.keys[:, i], projected.values[:, i])
    n = len(views)
    s = max(len(v.spatial) for v in views)
    p = max(len(v.pointers) for v in views)
    b = n
    if static:
        s = max(s, *(v.slots[0] for v in views))
        p = max(p, *(v.slots[1] for v in views))
        b = bucket_size(n)
    first = views[0].spatial[0][1]
    layers, _, hw, c = slot_keys_table.shape
    zero = slot_keys_table.new_zeros(layers, hw, c)
    zero_ptr = first.pointer.new_zeros(first.pointer.shape)
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    ptrs: list[torch.Tensor] = []
    padded = False
    rows = [*views, *[MemoryView((), ())] * (b - n)]
    for view in rows:
        pad_s, pad_p = s - len(view.spatial), p - len(view.pointers)
        padded = padded or pad_s > 0 or pad_p > 0
        for _, entry in view.spatial:
            kv = entry.cache.get(attn)
            assert kv is not None
            keys.append(kv[0])
            values.append(kv[1])
        keys += [zero] * pad_s
        values += [zero] * pad_s
        ptrs += [e.pointer for _, e in view.pointers] + [zero_ptr] * pad_p
    offsets, valid, distances, ptr_valid = slot_table(rows, s, p, slot_keys_table.device)
    return StoredMemory(
        keys=torch.stack(keys, dim=1).reshape(layers, b, s, hw, c),
        values=torch.stack(values, dim=1).reshape(layers, b, s, hw, c),
        offsets=offsets,
        valid=valid,
        pointers=torch.stack(ptrs).reshape(b, p, -1),
        pointer_distances=distances,
        pointer_valid=ptr_valid,
        slot_keys=slot_keys_table,
        padded=padded,
    )
