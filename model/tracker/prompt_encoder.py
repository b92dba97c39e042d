"""SAM prompt encoder: clicks and box corners -> sparse tokens, a mask -> a dense map.

Keys follow `tracker.sam_prompt_encoder.*`. Points are in model-input pixels (0..image_size);
a box enters as two points labelled 2 (top-left) and 3 (bottom-right), as the official tracker
feeds it. Labels: 1 positive click, 0 negative click, 2 / 3 box corners, -1 "not a point".
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import Factory, LayerNorm2d

NOT_A_POINT = -1


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates: (..., 2) in [0, 1] -> (..., 2F)."""

    positional_encoding_gaussian_matrix: torch.Tensor  # registered buffer

    def __init__(
        self,
        num_pos_feats: int,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        # In the checkpoint (a persistent buffer, not a parameter).
        self.register_buffer(
            "positional_encoding_gaussian_matrix",
            torch.randn(2, num_pos_feats, device=device, dtype=dtype),
        )

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        coords = 2 * coords.to(self.positional_encoding_gaussian_matrix.dtype) - 1  # -> [-1, 1]
        angles = 2 * math.pi * (coords @ self.positional_encoding_gaussian_matrix)  # ... x F
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # ... x 2F


class PromptEncoder(nn.Module):
    """Sparse point tokens (B, P + 1, C) and dense mask embeddings (B, C, g, g)."""

    def __init__(
        self,
        *,
        embed_dim: int,
        grid_size: int,
        image_size: int,
        mask_in_chans: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.embed_dim = embed_dim
        self.grid_size = grid_size
        self.image_size = image_size
        self.mask_input_size = 4 * grid_size  # dense prompts arrive at the low-res mask size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2, **factory)
        # labels 0 (negative), 1 (positive), 2 (box top-left), 3 (box bottom-right)
        self.point_embeddings = nn.ModuleList(
            nn.Embedding(1, embed_dim, **factory) for _ in range(4)
        )
        self.not_a_point_embed = nn.Embedding(1, embed_dim, **factory)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2, **factory),
            LayerNorm2d(mask_in_chans // 4, **factory),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2, **factory),
            LayerNorm2d(mask_in_chans, **factory),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1, **factory),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim, **factory)

    def dense_pe(self) -> torch.Tensor:
        """Position encoding of the image grid at pixel centres: (1, C, g, g)."""
        g = self.grid_size
        weight = self.pe_layer.positional_encoding_gaussian_matrix
        centres = (torch.arange(g, device=weight.device, dtype=weight.dtype) + 0.5) / g
        xy = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1)  # g x g x 2
        pe: torch.Tensor = self.pe_layer(xy)  # g x g x C
        return pe.permute(2, 0, 1).unsqueeze(0)  # 1 x C x g x g

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """coords (B, P, 2) xy pixels, labels (B, P) int -> tokens (B, P + 1, C).

        A "not a point" token is always appended, as the official tracker does (it passes no
        separate boxes, so SAM pads every point set).
        """
        batch = coords.shape[0]
        pad_xy = coords.new_zeros(batch, 1, 2)
        pad_label = labels.new_full((batch, 1), NOT_A_POINT)
        coords = torch.cat([coords + 0.5, pad_xy], dim=1)  # B x (P+1) x 2, pixel centres
        labels = torch.cat([labels, pad_label], dim=1)  # B x (P+1)
        tokens = self.pe_layer(coords / self.image_size)  # B x (P+1) x C
        not_a_point = (labels == NOT_A_POINT).unsqueeze(-1)
        tokens = torch.where(not_a_point, self.not_a_point_embed.weight.to(tokens.dtype), tokens)
        for label, embedding in enumerate(self.point_embeddings):
            weight = cast(nn.Embedding, embedding).weight
            tokens = tokens + (labels == label).unsqueeze(-1) * weight.to(tokens.dtype)
        return tokens

    def embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Mask logits or probabilities (B, 1, H, W) -> dense embeddings (B, C, g, g).

        Masks not at the low-res size (4g) are resized first (bilinear, antialiased).
        """
        size = (self.mask_input_size, self.mask_input_size)
        if masks.shape[-2:] != size:
            masks = F.interpolate(
                masks.float(), size=size, mode="bilinear", align_corners=False, antialias=True
            )
        dense: torch.Tensor = self.mask_downscaling(masks.to(self.no_mask_embed.weight.dtype))
        return dense

    def no_mask_dense(self, batch: int) -> torch.Tensor:
        """Dense embedding for objects without a mask prompt: (B, C, g, g), a broadcast view."""
        g = self.grid_size
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, g, g)
