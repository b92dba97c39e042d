"""Building blocks shared by the SAM 3 modules: attention, packed multi-head attention, MLP, LayerNorm2d.

Attention has two paths that compute the same thing: `F.scaled_dot_product_attention` (flash /
memory-efficient kernels on CUDA) and a readable softmax(QK^T / sqrt(d) + mask) V fallback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import nn


class Factory(TypedDict):
    """The `device` / `dtype` pair every module forwards to its parameters as `**factory`."""

    device: torch.device | None
    dtype: torch.dtype | None


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    fast: bool = True,
) -> torch.Tensor:
    """Scaled dot-product attention over heads: q (B, H, Lq, D), k and v (B, H, Lk, D) -> (B, H, Lq, D).

    `mask` broadcasts to (B, H, Lq, Lk): bool where True means "may not attend", or an additive
    float bias. `fast=False` runs the manual formula (reference and debugging path).
    """
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(
            mask, float("-inf")
        )
    elif mask is not None:
        mask = mask.to(q.dtype)
    if fast:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # B x H x Lq x Lk
    if mask is not None:
        scores = scores + mask
    return scores.softmax(dim=-1) @ v


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, L, H * D) -> (B, H, L, D)."""
    batch, length, channels = x.shape
    return x.view(batch, length, num_heads, channels // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, D) -> (B, L, H * D)."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class PackedMultiheadAttention(nn.Module):
    """Batch-first multi-head attention with `nn.MultiheadAttention`'s parameter layout.

    Keys: `in_proj_weight` (3C, C), `in_proj_bias` (3C,), `out_proj.{weight,bias}`, so official
    checkpoints load without remapping. Inference only (no dropout).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        factory = Factory(device=device, dtype=dtype)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))
        self.out_proj = nn.Linear(embed_dim, embed_dim, **factory)
        self.fast = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.in_proj_weight.is_meta:
            return
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query (B, Lq, C), key and value (B, Lk, C) -> (B, Lq, C).

        key_padding_mask: (B, Lk) bool, True = padding. attn_mask: bool (True = blocked) or additive
        float, broadcastable to (B, H, Lq, Lk).
        """
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = split_heads(F.linear(query, w_q, b_q), self.num_heads)  # B x H x Lq x D
        k = split_heads(F.linear(key, w_k, b_k), self.num_heads)  # B x H x Lk x D
        v = split_heads(F.linear(value, w_v, b_v), self.num_heads)
        mask = _combine_masks(attn_mask, key_padding_mask, q.dtype)
        out = attention(q, k, v, mask=mask, fast=self.fast)  # B x H x Lq x D
        projected: torch.Tensor = self.out_proj(merge_heads(out))
        return projected


def _combine_masks(
    attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor | None:
    """Merge an attention mask and a (B, Lk) padding mask into one additive (B, H|1, Lq|1, Lk) bias."""
    if key_padding_mask is None:
        return attn_mask
    padding = key_padding_mask[:, None, None, :]  # B x 1 x 1 x Lk
    if attn_mask is None:
        return padding
    if attn_mask.dtype == torch.bool:
        return attn_mask | padding
    return attn_mask.to(dtype).masked_fill(padding, float("-inf"))


class MLP(nn.Module):
    """`num_layers` Linear layers in `layers.{i}` with an activation between them.

    Options used by SAM 3: `residual` adds the input back, `out_norm` appends a LayerNorm,
    `sigmoid_output` squashes the result.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        *,
        activation: Callable[[torch.Tensor], torch.Tensor] = F.relu,
        residual: bool = False,
        out_norm: bool = False,
        sigmoid_output: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(
            nn.Linear(i, o, **factory) for i, o in zip(dims_in, dims_out, strict=True)
        )
        self.activation = activation
        self.residual = residual
        self.out_norm = nn.LayerNorm(output_dim, **factory) if out_norm else None
        self.sigmoid_output = sigmoid_output
        if residual and input_dim != output_dim:
            raise ValueError("a residual MLP needs input_dim == output_dim")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        if self.residual:
            x = x + shortcut
        if self.out_norm is not None:
            x = self.out_norm(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map."""

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-6,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(num_channels, device=device, dtype=dtype))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]
