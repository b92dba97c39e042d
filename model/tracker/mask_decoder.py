"""SAM mask decoder with the SAM 2 additions the tracker uses: an object-score token and head,
and high-resolution skips (`conv_s0` / `conv_s1` project the 4x and 2x neck maps).

Keys follow `tracker.sam_mask_decoder.*`. `forward` returns all 1 + 3 masks; `select_masks`
applies the official single / multi-mask choice per object, so objects with and without
multimask output share one batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import MLP, Factory, LayerNorm2d
from model.tracker.two_way_transformer import TwoWayTransformer


class DecoderOutput(NamedTuple):
    """All mask tokens' outputs for B objects.

    masks (B, 4, 4g, 4g) logits (token 0 = single-mask output, 1..3 = multimask); ious (B, 4)
    predicted IoUs (sigmoid); mask_tokens (B, 4, C) the mask tokens after the transformer
    (object pointers are projected from one of them); object_score_logits (B, 1).
    """

    masks: torch.Tensor
    ious: torch.Tensor
    mask_tokens: torch.Tensor
    object_score_logits: torch.Tensor


class MaskDecoder(nn.Module):
    def __init__(
        self,
        *,
        transformer: TwoWayTransformer,
        transformer_dim: int,
        num_multimask_outputs: int,
        iou_head_depth: int,
        iou_head_hidden_dim: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        dim = transformer_dim
        self.num_mask_tokens = num_multimask_outputs + 1
        self.transformer = transformer
        self.iou_token = nn.Embedding(1, dim, **factory)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim, **factory)
        self.obj_score_token = nn.Embedding(1, dim, **factory)
        # indices 0, 1, 3 hold weights (official Sequential layout)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2, **factory),
            LayerNorm2d(dim // 4, **factory),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2, **factory),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1, **factory)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1, **factory)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3, **factory) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=True,
            **factory,
        )
        self.pred_obj_score_head = MLP(dim, dim, 1, 3, **factory)

    def forward(
        self,
        *,
        image: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        feat_s0: torch.Tensor,
        feat_s1: torch.Tensor,
    ) -> DecoderOutput:
        """Decode B objects.

        image (B, C, g, g) memory-conditioned features; image_pe (1, C, g, g); sparse (B, T, C)
        prompt tokens; dense (B, C, g, g) mask-prompt embedding; feat_s0 (1 | B, C/8, 4g, 4g)
        and feat_s1 (1 | B, C/4, 2g, 2g): the neck's high-res maps after conv_s0 / conv_s1.
        """
        batch, channels, h, w = image.shape
        if sparse.shape[0] != batch or dense.shape != image.shape:
            raise ValueError(
                f"prompt batch {tuple(sparse.shape)} / {tuple(dense.shape)} does not match "
                f"image {tuple(image.shape)}"
            )
        # output tokens first: [object score, IoU, 4 mask tokens], then the prompt tokens
        output_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight]
        )  # (2 + M) x C
        tokens = torch.cat(
            [output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse.to(output_tokens.dtype)],
            dim=1,
        )  # B x (2 + M + T) x C

        hs, src = self.transformer(image + dense, image_pe, tokens)
        obj_score_out = hs[:, 0]  # B x C
        iou_out = hs[:, 1]  # B x C
        mask_tokens_out = hs[:, 2 : 2 + self.num_mask_tokens]  # B x M x C

        # upscale the image tokens 4x, adding the high-res skips on the way
        src = src.transpose(1, 2).reshape(batch, channels, h, w)  # B x C x g x g
        up1, norm, act1, up2, act2 = self.output_upscaling
        upscaled = act1(norm(up1(src) + feat_s1))  # B x C/4 x 2g x 2g
        upscaled = act2(up2(upscaled) + feat_s0)  # B x C/8 x 4g x 4g

        # each mask token becomes a per-pixel linear classifier over the upscaled map
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # B x M x C/8
        b, c, hh, ww = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, hh * ww)).view(b, -1, hh, ww)  # B x M x 4g x 4g

        return DecoderOutput(
            masks=masks,
            ious=self.iou_prediction_head(iou_out),
            mask_tokens=mask_tokens_out,
            object_score_logits=self.pred_obj_score_head(obj_score_out),
        )


def stability_scores(mask_logits: torch.Tensor, delta: float) -> torch.Tensor:
    """IoU between the masks thresholded at +delta and -delta: (B, H, W) -> (B,)."""
    flat = mask_logits.flatten(1)
    inter = (flat > delta).sum(-1).float()
    union = (flat > -delta).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


class SelectedMasks(NamedTuple):
    """One mask per object: masks (B, 1, 4g, 4g), ious (B,), tokens (B, C) for the pointer."""

    masks: torch.Tensor
    ious: torch.Tensor
    tokens: torch.Tensor


def select_masks(
    out: DecoderOutput,
    multimask: torch.Tensor,
    *,
    dynamic_stability: bool,
    stability_delta: float,
    stability_thresh: float,
) -> SelectedMasks:
    """The official choice, per object (multimask: (B,) bool).

    Multimask objects take the multimask output (tokens 1..3) with the highest predicted IoU,
    and that token becomes the object pointer. Single-mask objects take token 0, or, with
    dynamic stability, the best multimask output when token 0's mask is unstable; their pointer
    token stays token 0. The returned IoU is the chosen mask's (= official `ious.max(-1)`).
    """
    batch = out.masks.shape[0]
    rows = torch.arange(batch, device=out.masks.device)
    best_multi = 1 + out.ious[:, 1:].argmax(dim=-1)  # B
    single = torch.zeros_like(best_multi)
    if dynamic_stability:
        stable = stability_scores(out.masks[:, 0], stability_delta) >= stability_thresh
        single = torch.where(stable, single, best_multi)
    mask_index = torch.where(multimask, best_multi, single)  # B
    token_index = torch.where(multimask, best_multi, torch.zeros_like(best_multi))  # B
    return SelectedMasks(
        masks=out.masks[rows, mask_index].unsqueeze(1),
        ious=out.ious[rows, mask_index],
        tokens=out.mask_tokens[rows, token_index],
    )


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype mask arithmetic runs in: float32 for bf16 / fp16 inputs, else the input's own
    (float64 stays float64, so a float64 run has no float32 rounding anywhere)."""
    return torch.promote_types(dtype, torch.float32)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """x in `working_dtype` (a no-op for float32 and float64)."""
    return x.to(working_dtype(x.dtype))


def resize_logits(masks: torch.Tensor, size: int, *, antialias: bool) -> torch.Tensor:
    """Bilinear resize of (B, 1, H, W) mask logits to size x size, in `working_dtype`.

    The official tracker upsamples low-res masks to the image without antialiasing and
    resizes to the memory-encoder size with it; callers say which (the results differ by ~1e-6).
    """
    masks = upcast(masks)
    if masks.shape[-2:] == (size, size):
        return masks
    return F.interpolate(
        masks, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
    )
