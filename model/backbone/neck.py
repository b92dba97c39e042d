"""SimpleFPN neck (ViTDet): one ViT map -> maps at 4x, 2x, 1x and 0.5x its resolution.

Each level is `[upsample | identity | maxpool] -> conv_1x1 -> conv_3x3`, with the official
sub-module names (`dconv_2x2_0`, `dconv_2x2_1`, `dconv_2x2`, `conv_1x1`, `conv_3x3`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import Factory


class FpnLevel(nn.Module):
    """One SimpleFPN level: (B, C_in, H, W) -> (B, d_model, H * scale, W * scale)."""

    def __init__(
        self,
        in_dim: int,
        d_model: int,
        scale: float,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.scale = scale
        if scale == 4.0:
            self.dconv_2x2_0 = nn.ConvTranspose2d(in_dim, in_dim // 2, 2, stride=2, **factory)
            self.dconv_2x2_1 = nn.ConvTranspose2d(in_dim // 2, in_dim // 4, 2, stride=2, **factory)
            level_dim = in_dim // 4
        elif scale == 2.0:
            self.dconv_2x2 = nn.ConvTranspose2d(in_dim, in_dim // 2, 2, stride=2, **factory)
            level_dim = in_dim // 2
        elif scale in (1.0, 0.5):
            level_dim = in_dim
        else:
            raise ValueError(f"unsupported FPN scale factor {scale}; use 4, 2, 1 or 0.5")
        self.conv_1x1 = nn.Conv2d(level_dim, d_model, 1, **factory)
        self.conv_3x3 = nn.Conv2d(d_model, d_model, 3, padding=1, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 4.0:
            x = self.dconv_2x2_1(F.gelu(self.dconv_2x2_0(x)))  # B x C/4 x 4H x 4W
        elif self.scale == 2.0:
            x = self.dconv_2x2(x)  # B x C/2 x 2H x 2W
        elif self.scale == 0.5:
            x = F.max_pool2d(x, kernel_size=2, stride=2)  # B x C x H/2 x W/2
        out: torch.Tensor = self.conv_3x3(self.conv_1x1(x))
        return out


def build_fpn(
    in_dim: int,
    d_model: int,
    scale_factors: tuple[float, ...],
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> nn.ModuleList:
    """One `FpnLevel` per scale factor (all levels exist in the checkpoint, even scalped ones)."""
    return nn.ModuleList(
        FpnLevel(in_dim, d_model, s, device=device, dtype=dtype) for s in scale_factors
    )


def run_fpn(levels: nn.ModuleList, x: torch.Tensor, num_levels: int) -> tuple[torch.Tensor, ...]:
    """The first `num_levels` maps (highest resolution first); scalped levels are never computed."""
    return tuple(level(x) for level in list(levels)[:num_levels])
