"""SAM two-way transformer: prompt tokens and image tokens attend to each other.

Keys follow `tracker.sam_mask_decoder.transformer.*`: `layers.{i}` blocks with `self_attn`,
`cross_attn_token_to_image`, `mlp.lin1/lin2`, `cross_attn_image_to_token`, `norm1..4`, then
`final_attn_token_to_image` and `norm_final_attn`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import Factory, attention, merge_heads, split_heads


class Attention(nn.Module):
    """Multi-head attention whose q/k/v live in `embedding_dim / downsample_rate` channels."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        *,
        downsample_rate: int = 1,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        internal_dim = embedding_dim // downsample_rate
        if internal_dim % num_heads:
            raise ValueError(
                f"{internal_dim} attention channels do not split into {num_heads} heads"
            )
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, internal_dim, **factory)
        self.k_proj = nn.Linear(embedding_dim, internal_dim, **factory)
        self.v_proj = nn.Linear(embedding_dim, internal_dim, **factory)
        self.out_proj = nn.Linear(internal_dim, embedding_dim, **factory)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Lq, C), k and v (B, Lk, C) -> (B, Lq, C)."""
        q = split_heads(self.q_proj(q), self.num_heads)  # B x H x Lq x D
        k = split_heads(self.k_proj(k), self.num_heads)  # B x H x Lk x D
        v = split_heads(self.v_proj(v), self.num_heads)
        out: torch.Tensor = self.out_proj(merge_heads(attention(q, k, v)))  # B x Lq x C
        return out


class MLPBlock(nn.Module):
    """lin1 -> ReLU -> lin2."""

    def __init__(
        self,
        embedding_dim: int,
        mlp_dim: int,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim, device=device, dtype=dtype)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin2(F.relu(self.lin1(x)))
        return out


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token -> image attention, token MLP, image -> token attention."""

    def __init__(
        self,
        *,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int,
        skip_first_layer_pe: bool,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        rate = attention_downsample_rate
        self.self_attn = Attention(embedding_dim, num_heads, **factory)
        self.norm1 = nn.LayerNorm(embedding_dim, **factory)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=rate, **factory
        )
        self.norm2 = nn.LayerNorm(embedding_dim, **factory)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, **factory)
        self.norm3 = nn.LayerNorm(embedding_dim, **factory)
        self.norm4 = nn.LayerNorm(embedding_dim, **factory)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, downsample_rate=rate, **factory
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, T, C) prompt tokens, keys (B, HW, C) image tokens; same shapes out."""
        # tokens attend to each other (the first block has no position added yet)
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        # tokens attend to the image
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))

        queries = self.norm3(queries + self.mlp(queries))

        # the image attends to the tokens
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`depth` two-way blocks, then a last token -> image attention."""

    def __init__(
        self,
        *,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
                **factory,
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate, **factory
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim, **factory)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B, C, h, w), image_pe (1 | B, C, h, w), tokens (B, T, C)
        -> tokens (B, T, C), image tokens (B, h*w, C)."""
        keys = image.flatten(2).transpose(1, 2)  # B x HW x C
        key_pe = image_pe.flatten(2).transpose(1, 2)  # 1|B x HW x C
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe=tokens, key_pe=key_pe)
        q, k = queries + tokens, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
