"""Sine position encodings (DETR style) as pure functions.

Every function computes in float32 and returns float32 (callers cast to their working dtype),
except that `sine_position_grid` takes a `dtype` so float64 runs compute it in float64.
"""

from __future__ import annotations

import math

import torch


def _frequencies(
    num_feats: int,
    temperature: float,
    device: torch.device | None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(num_feats,) divisors: temperature ** (2 * (i // 2) / num_feats)."""
    dim_t = torch.arange(num_feats, dtype=dtype, device=device)
    return temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)


def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    """(..., F) angles -> (..., F) with sin on even and cos on odd channels, pairwise interleaved."""
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


def sine_position_grid(
    height: int,
    width: int,
    channels: int,
    *,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalised 2-D sine encoding of an H x W grid: (channels, H, W) in `dtype`, y features then
    x features.

    Positions run 1..H (1..W), are divided by the last position (+1e-6) and scaled to (0, 2*pi],
    exactly as SAM 3's `PositionEmbeddingSine(channels, normalize=True)`.
    """
    if channels % 2:
        raise ValueError(f"channels must be even, got {channels}")
    num_feats = channels // 2
    eps = 1e-6
    y = torch.arange(1, height + 1, dtype=dtype, device=device)
    x = torch.arange(1, width + 1, dtype=dtype, device=device)
    y = y / (y[-1] + eps) * scale
    x = x / (x[-1] + eps) * scale
    dim_t = _frequencies(num_feats, temperature, device, dtype)
    pos_y = _interleave_sin_cos(y[:, None] / dim_t)  # H x F
    pos_x = _interleave_sin_cos(x[:, None] / dim_t)  # W x F
    pos = torch.cat(
        (
            pos_y[:, None, :].expand(height, width, num_feats),
            pos_x[None, :, :].expand(height, width, num_feats),
        ),
        dim=-1,
    )  # H x W x C
    return pos.permute(2, 0, 1).contiguous()  # C x H x W


def sine_encode_xy(
    x: torch.Tensor,
    y: torch.Tensor,
    num_feats: int,
    *,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sine features of already-normalised coordinates: (N,), (N,) -> (N, F), (N, F)."""
    dim_t = _frequencies(num_feats, temperature, x.device)
    pos_x = _interleave_sin_cos((x.float() * scale)[:, None] / dim_t)
    pos_y = _interleave_sin_cos((y.float() * scale)[:, None] / dim_t)
    return pos_x, pos_y


def sine_encode_boxes(
    cx: torch.Tensor, cy: torch.Tensor, w: torch.Tensor, h: torch.Tensor, num_feats: int
) -> torch.Tensor:
    """Box centre sine features plus raw size: (N,) x 4 -> (N, 2F + 2) as [pos_y, pos_x, h, w]."""
    pos_x, pos_y = sine_encode_xy(cx, cy, num_feats)
    return torch.cat((pos_y, pos_x, h.float()[:, None], w.float()[:, None]), dim=1)
