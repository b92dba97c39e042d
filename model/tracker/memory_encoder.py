"""Memory encoder (`tracker.maskmem_backbone`): a frame's features plus its predicted mask -> one
spatial memory of `mem_dim` channels.

    mask (B, 1, 16g, 16g) -> mask_downsampler: 4 x [conv k3 s2, LayerNorm2d, GELU], conv 1x1
                                                                          -> (B, C, g, g)
    features (B, C, g, g) -> pix_feat_proj (1x1) -> + mask -> fuser: 2 ConvNeXt blocks
                          -> out_proj (1x1) -> memory (B, mem_dim, g, g)

The mask arrives already scaled (sigmoid * 20 - 10, see `Tracker.encode_memory`); the memory's
position encoding is a sine grid computed by the tracker, not stored here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import Factory, LayerNorm2d


class MaskDownSampler(nn.Module):
    """`encoder`: stride-`stride` convs until `total_stride`, channels x stride^2 each, then 1x1."""

    def __init__(
        self,
        *,
        embed_dim: int,
        kernel_size: int,
        stride: int,
        total_stride: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        num_layers = round(math.log(total_stride, stride))
        if stride**num_layers != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        layers: list[nn.Module] = []
        in_chans = 1
        for _ in range(num_layers):
            out_chans = in_chans * stride**2
            layers += [
                nn.Conv2d(
                    in_chans,
                    out_chans,
                    kernel_size,
                    stride=stride,
                    padding=(kernel_size - 1) // 2,
                    **factory,
                ),
                LayerNorm2d(out_chans, **factory),
                nn.GELU(),
            ]
            in_chans = out_chans
        layers.append(nn.Conv2d(in_chans, embed_dim, kernel_size=1, **factory))
        self.encoder = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(masks)  # B x 1 x 16g x 16g -> B x C x g x g
        return out


class CXBlock(nn.Module):
    """ConvNeXt block: 7x7 depthwise conv, LayerNorm2d, MLP (as Linear layers), layer scale."""

    def __init__(
        self,
        *,
        dim: int,
        kernel_size: int,
        mlp_dim: int,
        layer_scale_init: float,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.dwconv = nn.Conv2d(
            dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, **factory
        )
        self.norm = LayerNorm2d(dim, **factory)
        self.pwconv1 = nn.Linear(dim, mlp_dim, **factory)
        self.pwconv2 = nn.Linear(mlp_dim, dim, **factory)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init, **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # B x H x W x C
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)  # B x C x H x W


class Fuser(nn.Module):
    def __init__(self, blocks: list[CXBlock]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    def __init__(
        self,
        *,
        d_model: int,
        mem_dim: int,
        downsampler_kernel_size: int,
        downsampler_stride: int,
        downsampler_total_stride: int,
        fuser_layers: int,
        fuser_kernel_size: int,
        fuser_mlp_dim: int,
        fuser_layer_scale_init: float,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.total_stride = downsampler_total_stride
        self.mask_downsampler = MaskDownSampler(
            embed_dim=d_model,
            kernel_size=downsampler_kernel_size,
            stride=downsampler_stride,
            total_stride=downsampler_total_stride,
            **factory,
        )
        self.pix_feat_proj = nn.Conv2d(d_model, d_model, kernel_size=1, **factory)
        self.fuser = Fuser(
            [
                CXBlock(
                    dim=d_model,
                    kernel_size=fuser_kernel_size,
                    mlp_dim=fuser_mlp_dim,
                    layer_scale_init=fuser_layer_scale_init,
                    **factory,
                )
                for _ in range(fuser_layers)
            ]
        )
        self.out_proj = nn.Conv2d(d_model, mem_dim, kernel_size=1, **factory)

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """features (B, C, g, g), scaled masks (B, 1, 16g, 16g) -> memory (B, mem_dim, g, g)."""
        h, w = features.shape[-2:]
        if masks.shape[-2:] != (self.total_stride * h, self.total_stride * w):
            raise ValueError(
                f"memory masks {tuple(masks.shape)} must be {self.total_stride}x the features "
                f"{tuple(features.shape)}"
            )
        x = self.pix_feat_proj(features) + self.mask_downsampler(masks.to(features.dtype))
        memory: torch.Tensor = self.out_proj(self.fuser(x))
        return memory
