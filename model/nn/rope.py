"""2-D axial rotary position embedding (RoPE) as pure functions.

Channel pairs (2i, 2i+1) of each head are treated as one complex number and rotated by an angle
that depends on the token's x position (first half of the pairs) or y position (second half).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def axial_rope_angles(
    head_dim: int,
    end_x: int,
    end_y: int,
    *,
    theta: float = 10000.0,
    scale: float = 1.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Rotation angles for an end_y x end_x grid, row-major: (end_x * end_y, head_dim // 2) in
    `dtype` (float32, or float64 for float64 runs).

    Token i sits at x = i % end_x, y = i // end_x (times `scale`). The first head_dim // 4 pairs
    rotate with x, the last head_dim // 4 with y, at frequencies 1 / theta ** (4k / head_dim).
    """
    if head_dim % 4:
        raise ValueError(f"2-D axial RoPE needs head_dim divisible by 4, got {head_dim}")
    exponents = torch.arange(0, head_dim, 4, device=device)[: head_dim // 4].to(dtype) / head_dim
    freqs = 1.0 / (theta**exponents)
    t = torch.arange(end_x * end_y, dtype=dtype, device=device)
    t_x = (t % end_x) * scale
    t_y = torch.div(t, end_x, rounding_mode="floor") * scale
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)  # L x D/2


def axial_rope_freqs(
    head_dim: int,
    end_x: int,
    end_y: int,
    *,
    theta: float = 10000.0,
    scale: float = 1.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Unit complex rotations `freqs_cis`: (end_x * end_y, head_dim // 2) complex64 (complex128
    for dtype float64)."""
    angles = axial_rope_angles(
        head_dim, end_x, end_y, theta=theta, scale=scale, device=device, dtype=dtype
    )
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (..., L, D) by freqs_cis (L, D/2); returns x's dtype.

    Computed in float32 for bf16 / fp16 / float32 inputs and in float64 for float64 ones.
    """
    if freqs_cis.shape != (x.shape[-2], x.shape[-1] // 2):
        raise ValueError(f"freqs_cis {tuple(freqs_cis.shape)} does not fit x {tuple(x.shape)}")
    real = x.to(torch.promote_types(x.dtype, torch.float32))
    x_complex = torch.view_as_complex(real.reshape(*x.shape[:-1], -1, 2))  # ... x L x D/2
    return torch.view_as_real(x_complex * freqs_cis).flatten(-2).type_as(x)  # ... x L x D


class RotaryTable(NamedTuple):
    """Real-valued RoPE rotations for an L-token grid: cos and sin (L, D/2) in float32 (float64
    for float64 runs). Pair (2i, 2i+1) of a token's head vector turns by the angle of column i."""

    cos: torch.Tensor
    sin: torch.Tensor


_TABLES: dict[tuple[object, ...], RotaryTable] = {}
_MAX_TABLES = 16  # one per (grid, head dim, device, dtype) in use; a handful in practice


def axial_rope_table(
    head_dim: int,
    end_x: int,
    end_y: int,
    *,
    theta: float = 10000.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> RotaryTable:
    """Cached cos / sin tables of `axial_rope_angles`, built once per grid size, head dim,
    theta, device and dtype (never on the meta device: those are rebuilt, they hold no data)."""
    key = (head_dim, end_x, end_y, theta, str(device), dtype)
    table = _TABLES.get(key)
    if table is None:
        angles = axial_rope_angles(head_dim, end_x, end_y, theta=theta, device=device, dtype=dtype)
        table = RotaryTable(angles.cos(), angles.sin())
        if torch.device(device or "cpu").type != "meta":
            if len(_TABLES) >= _MAX_TABLES:
                _TABLES.pop(next(iter(_TABLES)))
            _TABLES[key] = table
    return table


def rotate(x: torch.Tensor, table: RotaryTable) -> torch.Tensor:
    """`apply_rotary` with real tables: x (..., L, D) rotated by table (L, D/2), x's dtype.

    The rotation runs in float32 (float64 for float64 inputs), as the complex path does, so
    both agree to float32 rounding. The table broadcasts over every leading axis of x, so S
    memories of one grid share one table, viewed (S, L, ...) instead of repeated."""
    if table.cos.shape != (x.shape[-2], x.shape[-1] // 2):
        raise ValueError(f"rotary table {tuple(table.cos.shape)} does not fit x {tuple(x.shape)}")
    work = torch.promote_types(x.dtype, torch.float32)
    pairs = x.to(work).reshape(*x.shape[:-1], -1, 2)  # ... x L x D/2 x 2
    even, odd = pairs[..., 0], pairs[..., 1]
    cos, sin = table.cos.to(work), table.sin.to(work)
    turned = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return turned.flatten(-2).to(x.dtype)
