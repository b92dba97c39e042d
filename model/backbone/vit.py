"""PE ViT trunk (SAM 3's `ViT`): patch embed, tiled absolute position, windowed/global RoPE blocks.

Attribute names follow the official checkpoint: `patch_embed.proj`, `pos_embed`, `ln_pre`,
`blocks.N.{norm1, attn.qkv, attn.proj, attn.freqs_cis, norm2, mlp.fc1, mlp.fc2}`.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model.config import VitConfig
from model.nn.layers import Factory, attention, merge_heads
from model.nn.rope import apply_rotary, axial_rope_freqs

# --- pure helpers -------------------------------------------------------------------------------


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nWin, window, window, C), zero-padding H and W up to multiples of window."""
    batch, height, width, channels = x.shape
    pad_h, pad_w = (-height) % window, (-width) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = height + pad_h, width + pad_w
    x = x.view(batch, hp // window, window, wp // window, window, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(
        -1, window, window, channels
    )  # B*nWin x w x w x C
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nWin, window, window, C) -> (B, H, W, C)."""
    hp, wp = padded_hw
    height, width = hw
    batch = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.reshape(batch, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, -1)  # B x Hp x Wp x C
    return x[:, :height, :width, :]


def tile_position_embedding(pos_embed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1, 1 + S*S, C) pretrain table (cls slot first, dropped) -> (1, H, W, C), tiled not interpolated."""
    grid = pos_embed[:, 1:]  # 1 x S*S x C
    size = int(grid.shape[1] ** 0.5)
    if size * size != grid.shape[1]:
        raise ValueError(f"pos_embed has {grid.shape[1]} grid slots, not a square")
    grid = grid.reshape(1, size, size, -1).permute(0, 3, 1, 2)  # 1 x C x S x S
    reps = (height // size + 1, width // size + 1)
    grid = grid.tile(1, 1, *reps)[:, :, :height, :width]  # 1 x C x H x W
    return grid.permute(0, 2, 3, 1)  # 1 x H x W x C


# --- modules --------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    def __init__(
        self, config: VitConfig, *, device: torch.device | None, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(
            3, config.width, kernel_size=p, stride=p, bias=False, device=device, dtype=dtype
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches: torch.Tensor = self.proj(images)  # B x C x H x W
        return patches.permute(0, 2, 3, 1)  # B x C x H x W -> B x H x W x C


class RopeAttention(nn.Module):
    """Multi-head self-attention with a fused `qkv` projection and 2-D axial RoPE on q and k.

    `freqs_cis` is a persistent complex64 buffer for the grid this block sees at the configured
    image size (a window, or the whole map for global blocks); other grids get angles on the fly.
    """

    freqs_cis: torch.Tensor  # registered buffer

    def __init__(
        self,
        config: VitConfig,
        *,
        grid: int,
        device: torch.device | None,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.theta = config.rope_theta
        self.window_size = config.window_size
        self.grid = grid
        self.fast = True
        self.qkv = nn.Linear(config.width, 3 * config.width, device=device, dtype=dtype)
        self.proj = nn.Linear(config.width, config.width, device=device, dtype=dtype)
        self.register_buffer("freqs_cis", self.compute_freqs(grid, device=device), persistent=True)

    def compute_freqs(self, grid: int, *, device: torch.device | None = None) -> torch.Tensor:
        """RoPE table for a grid x grid token map; positions scale by window / grid (interpolated RoPE)."""
        return axial_rope_freqs(
            self.head_dim,
            grid,
            grid,
            theta=self.theta,
            scale=self.window_size / grid,
            device=device,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, h, w, C) -> (B, h, w, C); B counts windows for windowed blocks."""
        batch, height, width, channels = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B x heads x L x D
        freqs = self.freqs_cis
        if not freqs.is_complex():
            raise RuntimeError(
                "freqs_cis lost its complex dtype (module.to(dtype) casts complex buffers); "
                "use build_sam3(..., dtype=...) or Sam3(config, dtype=...) instead"
            )
        if height != width or height != self.grid:
            freqs = self.compute_freqs(height, device=x.device)  # non-default input size
        q, k = apply_rotary(q, freqs), apply_rotary(k, freqs)
        out = attention(q, k, v, fast=self.fast)  # B x heads x L x D
        projected: torch.Tensor = self.proj(merge_heads(out).view(batch, height, width, channels))
        return projected


class FeedForward(nn.Module):
    def __init__(
        self, width: int, hidden: int, *, device: torch.device | None, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden, device=device, dtype=dtype)
        self.fc2 = nn.Linear(hidden, width, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(F.gelu(self.fc1(x)))
        return out


class Block(nn.Module):
    """Pre-norm transformer block; `window_size > 0` attends inside non-overlapping windows."""

    def __init__(
        self,
        config: VitConfig,
        *,
        window_size: int,
        device: torch.device | None,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(config.width, eps=config.layer_norm_eps, **factory)
        grid = window_size if window_size > 0 else config.grid_size
        self.attn = RopeAttention(config, grid=grid, **factory)
        self.norm2 = nn.LayerNorm(config.width, eps=config.layer_norm_eps, **factory)
        self.mlp = FeedForward(config.width, config.mlp_dim, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C) -> (B, H, W, C)."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            hw = (x.shape[1], x.shape[2])
            x, padded_hw = window_partition(x, self.window_size)  # B*nWin x w x w x C
            x = window_unpartition(self.attn(x), self.window_size, padded_hw, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        mlp_out: torch.Tensor = self.mlp(self.norm2(x))
        return x + mlp_out


class ViT(nn.Module):
    """images (B, 3, S, S) normalised to [-1, 1] -> last block's map (B, C, S/p, S/p)."""

    def __init__(
        self,
        config: VitConfig,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.config = config
        self.patch_embed = PatchEmbed(config, **factory)
        pretrain_grid = config.pretrain_image_size // config.patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pretrain_grid**2, config.width, **factory))
        self.ln_pre = nn.LayerNorm(config.width, eps=config.layer_norm_eps, **factory)
        self.blocks = nn.ModuleList(
            Block(
                config,
                window_size=0 if i in config.global_blocks else config.window_size,
                **factory,
            )
            for i in range(config.depth)
        )
        if not self.pos_embed.is_meta:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] % p or images.shape[3] % p:
            raise ValueError(
                f"expected images (B, 3, H, W) with H, W multiples of {p}, got {tuple(images.shape)}"
            )
        x: torch.Tensor = self.patch_embed(images.to(self.pos_embed.dtype))  # B x H x W x C
        x = x + tile_position_embedding(self.pos_embed, x.shape[1], x.shape[2])
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return x.permute(0, 3, 1, 2)  # B x C x H x W

    def recompute_rope(self) -> None:
        """Refill every block's `freqs_cis` from the config (after a meta-device build)."""
        for block in self.blocks:
            attn = cast(Block, block).attn
            attn.freqs_cis = attn.compute_freqs(attn.grid, device=self.pos_embed.device)
