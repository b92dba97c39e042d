"""Fusion encoder: image tokens attend to themselves, then to the prompt tokens (text + exemplars).

Official `TransformerEncoderFusion` with 6 pre-norm `TransformerEncoderLayer`s at d 256: only the
72 x 72 level is fused, the image position encoding is added to the self-attention queries and
keys, the prompt has no position term. The same layer type, with the roles swapped (prompt tokens
attend to the image), is the geometry encoder's layer (model/detector/geometry.py).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import Factory, PackedMultiheadAttention


class EncoderLayer(nn.Module):
    """Pre-norm layer: self-attention, cross-attention to a memory, ReLU FFN.

    Parameter names are the official ones (`self_attn`, `cross_attn_image`, `linear1/2`,
    `norm1/2/3`) so `sam3.pt` loads unchanged.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        *,
        eps: float = 1e-5,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.self_attn = PackedMultiheadAttention(dim, num_heads, **factory)
        self.cross_attn_image = PackedMultiheadAttention(dim, num_heads, **factory)
        self.linear1 = nn.Linear(dim, ffn_dim, **factory)
        self.linear2 = nn.Linear(ffn_dim, dim, **factory)
        self.norm1 = nn.LayerNorm(dim, eps=eps, **factory)
        self.norm2 = nn.LayerNorm(dim, eps=eps, **factory)
        self.norm3 = nn.LayerNorm(dim, eps=eps, **factory)

    def self_block(
        self, x: torch.Tensor, pos: torch.Tensor | None, padding_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x + SelfAttn(norm1(x)); `pos` (broadcastable to x) is added to queries and keys only."""
        h = self.norm1(x)
        qk = h if pos is None else h + pos
        attended: torch.Tensor = self.self_attn(qk, qk, h, key_padding_mask=padding_mask)
        return x + attended

    def cross_block(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_keys: torch.Tensor,
        memory_padding_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x + CrossAttn(norm2(x) -> memory), then the FFN block; see `forward` for the arguments."""
        h = self.norm2(x)
        x = x + self.cross_attn_image(h, memory_keys, memory, key_padding_mask=memory_padding_mask)
        ffn_out: torch.Tensor = self.linear2(F.relu(self.linear1(self.norm3(x))))
        return x + ffn_out

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        *,
        pos: torch.Tensor | None = None,
        memory_pos: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        memory_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: B x L x C tokens; memory: B x S x C. Returns B x L x C.

        pos: added to the self-attention queries and keys; memory_pos: added to the cross-attention
        keys (both broadcast over the batch); padding masks are (B, L) / (B, S), True at padding.
        """
        x = self.self_block(x, pos, padding_mask)
        memory_keys = memory if memory_pos is None else memory + memory_pos
        return self.cross_block(x, memory, memory_keys, memory_padding_mask)


class FusionEncoder(nn.Module):
    """Image tokens x prompt tokens, `num_layers` pre-norm layers (official `transformer.encoder`)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        *,
        eps: float = 1e-5,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(dim, num_heads, ffn_dim, eps=eps, device=device, dtype=dtype)
            for _ in range(num_layers)
        )

    def forward(
        self,
        image: torch.Tensor,
        image_pos: torch.Tensor,
        prompt: torch.Tensor,
        prompt_padding: torch.Tensor,
        image_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fuse each prompt with its image.

        image: B x HW x C tokens of the coarsest level; image_pos: 1 x HW x C (or B x HW x C);
        prompt: P x L x C with prompt_padding P x L (True = padding); image_index: (P,) image row
        of each prompt (default: P == B, row i). Returns P x HW x C fused image tokens.

        The first self-attention sees no prompt yet, so it runs once per image and is shared by
        every prompt of that image.
        """
        first, rest = cast(EncoderLayer, self.layers[0]), self.layers[1:]
        x = first.self_block(image, image_pos, None)  # B x HW x C
        x = select_rows(x, image_index, prompt.shape[0])  # P x HW x C
        x = first.cross_block(x, prompt, prompt, prompt_padding)
        for layer in rest:
            x = layer(x, prompt, pos=image_pos, memory_padding_mask=prompt_padding)
        return x


def select_rows(x: torch.Tensor, index: torch.Tensor | None, rows: int) -> torch.Tensor:
    """x[index] with a copy-free expand when x has one row; x itself when index is None."""
    if index is None:
        if x.shape[0] != rows:
            raise ValueError(f"expected {rows} rows, got {x.shape[0]}: pass an index")
        return x
    if x.shape[0] == 1:
        return x.expand(rows, *x.shape[1:])
    return x.index_select(0, index)
