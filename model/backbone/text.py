"""CLIP-style text encoder (SAM 3's `VETextEncoder`): causal pre-LN transformer + `resizer`.

Attribute names follow the official checkpoint: `encoder.{token_embedding, positional_embedding,
transformer.resblocks.N.{attn, ln_1, ln_2, mlp.c_fc, mlp.c_proj}, ln_final, text_projection}` and
`resizer`. Every token state is kept (no pooling); `text_projection` is loaded but unused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import TextConfig
from model.nn.layers import Factory, PackedMultiheadAttention


class TextMlp(nn.Module):
    def __init__(
        self, width: int, hidden: int, *, device: torch.device | None, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden, device=device, dtype=dtype)
        self.c_proj = nn.Linear(hidden, width, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.c_proj(F.gelu(self.c_fc(x)))
        return out


class ResidualAttentionBlock(nn.Module):
    def __init__(
        self, config: TextConfig, *, device: torch.device | None, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.ln_1 = nn.LayerNorm(config.width, eps=config.layer_norm_eps, **factory)
        self.attn = PackedMultiheadAttention(config.width, config.num_heads, **factory)
        self.ln_2 = nn.LayerNorm(config.width, eps=config.layer_norm_eps, **factory)
        self.mlp = TextMlp(config.width, config.mlp_dim, **factory)

    def forward(self, x: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=causal_mask)
        mlp_out: torch.Tensor = self.mlp(self.ln_2(x))
        return x + mlp_out


class Transformer(nn.Module):
    def __init__(
        self, config: TextConfig, *, device: torch.device | None, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(config, device=device, dtype=dtype) for _ in range(config.depth)
        )

    def forward(self, x: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal_mask)
        return x


class TextTransformer(nn.Module):
    """token ids (B, L) -> token states (B, L, width) after `ln_final`; causal self-attention."""

    def __init__(
        self, config: TextConfig, *, device: torch.device | None, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.context_length = config.context_length
        self.token_embedding = nn.Embedding(config.vocab_size, config.width, **factory)
        self.positional_embedding = nn.Parameter(
            torch.empty(config.context_length, config.width, **factory)
        )
        self.transformer = Transformer(config, **factory)
        self.ln_final = nn.LayerNorm(config.width, eps=config.layer_norm_eps, **factory)
        self.text_projection = nn.Parameter(
            torch.empty(config.width, config.projection_dim, **factory)
        )
        if not self.positional_embedding.is_meta:  # the official code leaves these uninitialised
            nn.init.normal_(self.positional_embedding, std=0.01)
            nn.init.normal_(self.text_projection, std=config.width**-0.5)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        length = token_ids.shape[1]
        if length > self.context_length:
            raise ValueError(f"{length} tokens exceed the context length {self.context_length}")
        x = self.token_embedding(token_ids) + self.positional_embedding[:length]  # B x L x C
        blocked = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(
            1
        )  # L x L, True above diag
        x = self.transformer(x, blocked)
        out: torch.Tensor = self.ln_final(x)
        return out


class TextEncoder(nn.Module):
    """The language backbone: `encoder` (TextTransformer) then `resizer` to the detector width."""

    def __init__(
        self,
        config: TextConfig,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.encoder = TextTransformer(config, device=device, dtype=dtype)
        self.resizer = nn.Linear(config.width, config.out_dim, device=device, dtype=dtype)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids (B, L) int64 -> (B, L, out_dim) features for every position (padding included)."""
        features: torch.Tensor = self.resizer(self.encoder(token_ids))
        return features
