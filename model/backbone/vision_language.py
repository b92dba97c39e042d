"""The SAM 3 vision-language backbone: ViT + two SimpleFPN necks, and the text encoder.

`Sam3Backbone` mirrors the official `SAM3VLBackbone` layout (`vision_backbone`, `language_backbone`)
so its keys are `detector.backbone.*` inside the full model. Image and text paths are separate
calls: a stream computes text features once per concept and image features once per frame.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn

from model.backbone.neck import build_fpn, run_fpn
from model.backbone.text import TextEncoder
from model.backbone.vit import ViT
from model.config import NeckConfig, TextConfig, VitConfig
from model.nn.layers import Factory
from model.nn.position import sine_position_grid


class VisionFeatures(NamedTuple):
    """Multi-scale maps of one image batch, highest resolution first.

    With the official config each tuple holds (B, 256, 288, 288), (B, 256, 144, 144) and
    (B, 256, 72, 72); `*_pos` are the matching sine position encodings (same shapes, expanded
    over the batch). `tracker_*` are None when the tracker neck was not requested or not built.
    """

    detector_maps: tuple[torch.Tensor, ...]
    detector_pos: tuple[torch.Tensor, ...]
    tracker_maps: tuple[torch.Tensor, ...] | None
    tracker_pos: tuple[torch.Tensor, ...] | None


class TextFeatures(NamedTuple):
    """Prompt tokens: `tokens` (B, L, d_model); `padding_mask` (B, L) bool, True = padding."""

    tokens: torch.Tensor
    padding_mask: torch.Tensor


@functools.lru_cache(maxsize=16)
def _position_grid(
    height: int, width: int, channels: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    return sine_position_grid(height, width, channels, device=device).to(dtype)  # C x H x W


def _positions(maps: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Sine position encodings for each map, expanded (not copied) over the batch."""
    return tuple(
        _position_grid(m.shape[2], m.shape[3], m.shape[1], m.device, m.dtype).expand_as(m)
        for m in maps
    )


class VisionBackbone(nn.Module):
    """`trunk` (ViT) -> `convs` (detector FPN) and `sam2_convs` (tracker FPN)."""

    def __init__(
        self,
        vit: VitConfig,
        neck: NeckConfig,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.num_levels = neck.num_levels
        self.trunk = ViT(vit, **factory)
        self.convs = build_fpn(vit.width, neck.d_model, neck.scale_factors, **factory)
        self.sam2_convs = (
            build_fpn(vit.width, neck.d_model, neck.scale_factors, **factory)
            if neck.tracker_neck
            else None
        )

    def forward(
        self, images: torch.Tensor, *, detector: bool = True, tracker: bool = True
    ) -> VisionFeatures:
        """images (B, 3, S, S) normalised with mean = std = 0.5 -> `VisionFeatures`."""
        x = self.trunk(images)  # B x C x g x g
        detector_maps = run_fpn(self.convs, x, self.num_levels) if detector else ()
        tracker_maps = None
        if tracker and self.sam2_convs is not None:
            tracker_maps = run_fpn(self.sam2_convs, x, self.num_levels)
        return VisionFeatures(
            detector_maps=detector_maps,
            detector_pos=_positions(detector_maps),
            tracker_maps=tracker_maps,
            tracker_pos=None if tracker_maps is None else _positions(tracker_maps),
        )


class Sam3Backbone(nn.Module):
    """`vision_backbone` + `language_backbone` (the official `SAM3VLBackbone`)."""

    def __init__(
        self,
        vit: VitConfig,
        neck: NeckConfig,
        text: TextConfig,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if text.out_dim != neck.d_model:
            raise ValueError(f"text out_dim {text.out_dim} != neck d_model {neck.d_model}")
        self.vision_backbone = VisionBackbone(vit, neck, device=device, dtype=dtype)
        self.language_backbone = TextEncoder(text, device=device, dtype=dtype)

    def forward_image(
        self, images: torch.Tensor, *, detector: bool = True, tracker: bool = True
    ) -> VisionFeatures:
        features: VisionFeatures = self.vision_backbone(images, detector=detector, tracker=tracker)
        return features

    def forward_text(
        self, token_ids: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> TextFeatures:
        """token_ids (B, L) int64 -> `TextFeatures`; without a mask, id 0 counts as padding (official)."""
        if padding_mask is None:
            padding_mask = token_ids == 0
        if padding_mask.shape != token_ids.shape:
            raise ValueError(
                f"padding_mask {tuple(padding_mask.shape)} != token_ids {tuple(token_ids.shape)}"
            )
        return TextFeatures(self.language_backbone(token_ids), padding_mask.bool())

    def recompute_buffers(self) -> None:
        """Refill derived buffers (ViT RoPE tables) after a meta-device build."""
        self.vision_backbone.trunk.recompute_rope()
