"""Temporal position of object pointers (official `get_1d_sine_pe` feeding `obj_ptr_tpos_proj`).

An object pointer (C,) is one token summarising an object on one frame. When the memory
attention reads an object's pointers, each carries a code of how far back its frame lies: the
distance (frame distance, or the rank under memory selection; see `MemoryBatch`) divided by
`max_obj_ptrs_in_encoder - 1`, encoded as 1-D sines and projected by the tracker's
`obj_ptr_tpos_proj` (a weight of the checkpoint, so it stays on `Tracker`).
"""

from __future__ import annotations

import torch
from torch import nn

from model.tracker.mask_decoder import upcast, working_dtype


def sine_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine encoding (official `get_1d_sine_pe`): (...,) -> (..., dim) as [sin | cos].

    Computed in float32, or float64 for float64 positions."""
    half = dim // 2
    positions = upcast(positions)
    dim_t = torch.arange(half, dtype=positions.dtype, device=positions.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def pointer_positions(
    tpos_proj: nn.Linear, distances: torch.Tensor, max_pointers: int
) -> torch.Tensor:
    """(N, P) pointer distances -> (N, P, mem_dim) temporal positions of the pointer tokens.

    Distances are normalised by the pointer cap (`max_pointers - 1`) from a stream's first frame
    on (official streaming; docs/video.md), encoded as sines of the projection's input width
    (float32, or float64 for a float64 model) and projected by `tpos_proj` (the tracker's
    `obj_ptr_tpos_proj`) in its own dtype."""
    dtype = tpos_proj.weight.dtype
    scaled = distances.to(working_dtype(dtype)) / max(max_pointers - 1, 1)
    positions: torch.Tensor = tpos_proj(sine_1d(scaled, tpos_proj.in_features).to(dtype))
    return positions  # N x P x mem_dim
