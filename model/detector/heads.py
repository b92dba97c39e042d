"""Detector heads: dot-product scoring and the segmentation head (pixel decoder, mask and semantic heads).

Scoring (official `DotProductScoring`): the prompt tokens go through a residual MLP + LayerNorm, are
mean-pooled over the valid tokens and projected; each query is projected too; the class logit is
their scaled dot product, clamped to +-12.

Segmentation (official `UniversalSegmentationHead` + `PixelDecoder`): the fused image tokens first
cross-attend to the prompt; they replace the coarsest FPN level, and a nearest-upsample + add +
conv3x3 + GroupNorm + ReLU ladder climbs to the finest level (288 x 288 at full size). A 1x1 conv
gives per-pixel mask embeddings; each query's mask is the dot product of its MLP embedding with
them (the 1x1 conv is folded into the query side, see `MaskPredictor`). A second 1x1 conv gives
one semantic (concept-vs-background) map per prompt.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.detector.fusion import select_rows
from model.nn.layers import MLP, Factory, PackedMultiheadAttention


class DotProductScoring(nn.Module):
    """Official `detector.dot_prod_scoring`."""

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        *,
        clamp: float = 12.0,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.prompt_mlp = MLP(dim, ffn_dim, dim, 2, residual=True, out_norm=True, **factory)
        self.prompt_proj = nn.Linear(dim, dim, **factory)
        self.hs_proj = nn.Linear(dim, dim, **factory)
        self.scale = 1.0 / math.sqrt(dim)
        self.clamp = clamp

    def forward(
        self, queries: torch.Tensor, prompt: torch.Tensor, prompt_padding: torch.Tensor
    ) -> torch.Tensor:
        """queries: ... x P x Q x C (any leading layer axes); prompt: P x L x C with padding P x L
        (True = padding). Returns class logits ... x P x Q."""
        tokens = self.prompt_mlp(prompt)  # P x L x C
        valid = (~prompt_padding).to(tokens.dtype)[..., None]  # P x L x 1
        pooled = (tokens * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)  # P x C
        prompt_vec = self.prompt_proj(pooled)  # P x C
        logits: torch.Tensor = self.hs_proj(queries) @ prompt_vec[..., None]  # ... x P x Q x 1
        return (logits.squeeze(-1) * self.scale).clamp(min=-self.clamp, max=self.clamp)


class PixelDecoder(nn.Module):
    """Official `segmentation_head.pixel_decoder`: coarse-to-fine ladder over the FPN levels.

    The checkpoint holds `num_stages` convs, but only `levels - 1` are used (2 of 3 at full size).
    """

    def __init__(
        self,
        dim: int,
        num_stages: int,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.conv_layers = nn.ModuleList(
            nn.Conv2d(dim, dim, 3, padding=1, **factory) for _ in range(num_stages)
        )
        self.norms = nn.ModuleList(nn.GroupNorm(8, dim, **factory) for _ in range(num_stages))

    def forward(
        self,
        coarse: torch.Tensor,
        skips: tuple[torch.Tensor, ...],
        image_index: torch.Tensor | None,
    ) -> torch.Tensor:
        """coarse: P x C x h x w; skips: finer FPN levels, finest first, each B x C x H_i x W_i with
        the prompts' images at `image_index`. Returns P x C x H_0 x W_0."""
        x = coarse
        for stage, skip in enumerate(reversed(skips)):
            skip = select_rows(skip, image_index, x.shape[0]) if skip.shape[0] > 1 else skip
            x = skip + F.interpolate(x, size=skip.shape[-2:], mode="nearest")  # P x C x H_i x W_i
            x = F.relu(self.norms[stage](self.conv_layers[stage](x)))
        return x


class MaskPredictor(nn.Module):
    """`mask_predictor.mask_embed`: query -> mask embedding (3-layer MLP), dotted with pixel embeddings."""

    def __init__(
        self, dim: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> None:
        super().__init__()
        self.mask_embed = MLP(dim, dim, dim, 3, device=device, dtype=dtype)

    def forward(
        self, queries: torch.Tensor, pixels: torch.Tensor, projection: nn.Conv2d
    ) -> torch.Tensor:
        """queries: P x Q x C; pixels: P x C x H x W before the 1x1 `projection` -> logits P x Q x H x W.

        The official head projects every pixel (`instance_seg_head`) and then takes dot products
        with the query embeddings E. Both steps are linear, so E . (W x + b) = (E W) . x + E . b:
        projecting the Q query embeddings instead of the H x W pixels skips a C x C x HW conv
        (11 GFLOP per prompt at 288 x 288) and gives the same logits up to rounding.
        """
        embed: torch.Tensor = self.mask_embed(queries)  # P x Q x C
        weight = projection.weight.flatten(1)  # C_out x C_in
        num_prompts, channels, height, width = pixels.shape
        masks = (embed @ weight) @ pixels.reshape(
            num_prompts, channels, height * width
        )  # P x Q x HW
        if projection.bias is not None:
            masks = masks + (embed @ projection.bias)[..., None]
        return masks.view(num_prompts, -1, height, width)


class SegmentationHead(nn.Module):
    """Official `detector.segmentation_head` (UniversalSegmentationHead, no aux masks or presence head)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        upsampling_stages: int,
        *,
        eps: float = 1e-5,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.pixel_decoder = PixelDecoder(dim, upsampling_stages, **factory)
        self.mask_predictor = MaskPredictor(dim, **factory)
        self.instance_seg_head = nn.Conv2d(dim, dim, 1, **factory)
        self.semantic_seg_head = nn.Conv2d(dim, 1, 1, **factory)
        self.cross_attend_prompt = PackedMultiheadAttention(dim, num_heads, **factory)
        self.cross_attn_norm = nn.LayerNorm(dim, eps=eps, **factory)

    def forward(
        self,
        fused: torch.Tensor,
        feature_size: tuple[int, int],
        skips: tuple[torch.Tensor, ...],
        image_index: torch.Tensor | None,
        prompt: torch.Tensor,
        prompt_padding: torch.Tensor,
        queries: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """fused: P x hw x C fused image tokens on the `feature_size` (h, w) grid; skips: the finer FPN
        levels, finest first (B x C x H_i x W_i); prompt: P x L x C, padding P x L; queries: P x Q x C
        last-layer query embeddings. Returns mask logits P x Q x H_0 x W_0 and semantic logits
        P x 1 x H_0 x W_0."""
        fused = fused + self.cross_attend_prompt(
            self.cross_attn_norm(fused), prompt, prompt, key_padding_mask=prompt_padding
        )
        num_prompts, _, channels = fused.shape
        coarse = fused.transpose(1, 2).reshape(
            num_prompts, channels, *feature_size
        )  # P x C x h x w
        pixels = self.pixel_decoder(coarse, skips, image_index)  # P x C x H_0 x W_0
        masks = self.mask_predictor(queries, pixels, self.instance_seg_head)
        return masks, self.semantic_seg_head(pixels)
