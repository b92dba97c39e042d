"""Geometry (exemplar) encoder: positive/negative boxes and points -> prompt tokens.

Official `SequenceGeometryEncoder` as built for SAM 3 (reference §1a): each box is the sum of a
direct projection of its cxcywh, a 7 x 7 ROI-align of the LayerNorm'd 72 x 72 image map through a
7 x 7 conv, and a projection of its centre's sine encoding plus raw (h, w); each point likewise with
a bilinear sample instead of ROI-align. A label embedding marks positive / negative. A `cls` token is
always appended (so a text-only prompt still gets one image-conditioned token), then `final_proj` +
LayerNorm and pre-norm layers whose queries are the prompt tokens and whose memory is the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.detector.fusion import EncoderLayer, select_rows
from model.nn.box_ops import cxcywh_to_xyxy
from model.nn.layers import Factory
from model.nn.position import sine_encode_boxes, sine_encode_xy


@dataclass(frozen=True)
class GeometryPrompt:
    """Exemplar boxes and points of P prompts, padded to the longest prompt.

    boxes: P x N x 4 cxcywh normalised to [0, 1]; box_labels: P x N bool (True = positive);
    box_padding: P x N bool (True = padding). points: P x M x 2 xy normalised; point_labels and
    point_padding: P x M bool. N or M may be 0.
    """

    boxes: torch.Tensor
    box_labels: torch.Tensor
    box_padding: torch.Tensor
    points: torch.Tensor
    point_labels: torch.Tensor
    point_padding: torch.Tensor

    @property
    def num_prompts(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls, num_prompts: int, *, device: torch.device | None = None) -> GeometryPrompt:
        """P prompts without any box or point (text-only concepts)."""
        flags = torch.zeros(num_prompts, 0, dtype=torch.bool, device=device)
        return cls(
            boxes=torch.zeros(num_prompts, 0, 4, device=device),
            box_labels=flags,
            box_padding=flags,
            points=torch.zeros(num_prompts, 0, 2, device=device),
            point_labels=flags,
            point_padding=flags,
        )

    @classmethod
    def from_boxes(
        cls,
        boxes: list[torch.Tensor],
        labels: list[torch.Tensor],
        *,
        device: torch.device | None = None,
    ) -> GeometryPrompt:
        """Pad per-prompt box lists: boxes[p] (N_p, 4) cxcywh normalised, labels[p] (N_p,) bool."""
        num = len(boxes)
        longest = max((len(b) for b in boxes), default=0)
        padded = torch.zeros(num, longest, 4, device=device)
        flags = torch.zeros(num, longest, dtype=torch.bool, device=device)
        padding = torch.ones(num, longest, dtype=torch.bool, device=device)
        for p, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
            padded[p, : len(b)] = b.to(padded)
            flags[p, : len(b)] = lab.to(device=device, dtype=torch.bool)
            padding[p, : len(b)] = False
        empty = cls.empty(num, device=device)
        return cls(padded, flags, padding, empty.points, empty.point_labels, empty.point_padding)


class GeometryEncoder(nn.Module):
    """Official `detector.geometry_encoder`: (boxes, points) + image -> P x T x C prompt tokens."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        *,
        roi_size: int = 7,
        eps: float = 1e-5,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.roi_size = roi_size
        self.label_embed = nn.Embedding(2, dim, **factory)  # 0 negative, 1 positive
        self.cls_embed = nn.Embedding(1, dim, **factory)
        self.points_direct_project = nn.Linear(2, dim, **factory)
        self.points_pool_project = nn.Linear(dim, dim, **factory)
        self.points_pos_enc_project = nn.Linear(dim, dim, **factory)
        self.boxes_direct_project = nn.Linear(4, dim, **factory)
        self.boxes_pool_project = nn.Conv2d(dim, dim, roi_size, **factory)
        self.boxes_pos_enc_project = nn.Linear(dim + 2, dim, **factory)
        self.final_proj = nn.Linear(dim, dim, **factory)
        self.norm = nn.LayerNorm(dim, eps=eps, **factory)
        self.img_pre_norm = nn.LayerNorm(dim, eps=eps, **factory)
        self.encode = nn.ModuleList(
            EncoderLayer(dim, num_heads, ffn_dim, eps=eps, **factory) for _ in range(num_layers)
        )
        self.encode_norm = nn.LayerNorm(dim, eps=eps, **factory)

    def forward(
        self,
        prompt: GeometryPrompt,
        image: torch.Tensor,
        image_pos: torch.Tensor,
        image_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode P prompts against their images.

        image: B x C x H x W (the coarsest FPN level); image_pos: its sine encoding, broadcastable to
        B x C x H x W; image_index: (P,) image row of each prompt (default P == B, row i).
        Returns tokens P x (M + N + 1) x C (points, boxes, cls) and their padding mask P x (M + N + 1).
        """
        num_prompts = prompt.num_prompts
        _, dim, height, width = image.shape
        pooled_map = self.img_pre_norm(image.permute(0, 2, 3, 1)).permute(
            0, 3, 1, 2
        )  # B x C x H x W
        parts, padding = [], []
        if prompt.points.shape[1] > 0:
            parts.append(self._encode_points(prompt, pooled_map, image_index))
            padding.append(prompt.point_padding)
        if prompt.boxes.shape[1] > 0:
            parts.append(self._encode_boxes(prompt, pooled_map, image_index))
            padding.append(prompt.box_padding)
        parts.append(self.cls_embed.weight.expand(num_prompts, 1, dim))
        padding.append(torch.zeros(num_prompts, 1, dtype=torch.bool, device=image.device))
        tokens = self.norm(self.final_proj(torch.cat(parts, dim=1)))  # P x T x C
        token_padding = torch.cat(padding, dim=1)  # P x T

        # Contiguous once here rather than a strided copy inside every layer's projections.
        memory = image.flatten(2).transpose(1, 2).contiguous()  # B x HW x C
        memory = select_rows(memory, image_index, num_prompts)  # P x HW x C
        memory_pos = (
            image_pos[:1].flatten(2).transpose(1, 2).contiguous()
        )  # 1 x HW x C, same for all
        for layer in self.encode:
            tokens = layer(tokens, memory, memory_pos=memory_pos, padding_mask=token_padding)
        return self.encode_norm(tokens), token_padding

    def _encode_boxes(
        self, prompt: GeometryPrompt, pooled_map: torch.Tensor, image_index: torch.Tensor | None
    ) -> torch.Tensor:
        """P x N x C: direct + ROI-pooled + sine-position projections + label embedding."""
        boxes = prompt.boxes.to(pooled_map.dtype)  # P x N x 4 cxcywh
        num_prompts, num_boxes, _ = boxes.shape
        height, width = pooled_map.shape[-2:]
        direct = self.boxes_direct_project(boxes)

        scale = boxes.new_tensor([width, height, width, height])
        boxes_px = (cxcywh_to_xyxy(boxes) * scale).flatten(0, 1)  # PN x 4 in feature pixels
        rows = _prompt_rows(image_index, num_prompts, pooled_map.device).repeat_interleave(
            num_boxes
        )
        rois = roi_align(pooled_map, boxes_px, rows, self.roi_size)  # PN x C x r x r
        pooled = self.boxes_pool_project(rois).view(num_prompts, num_boxes, -1)  # P x N x C

        cx, cy, w, h = boxes.flatten(0, 1).unbind(-1)
        sine = sine_encode_boxes(cx, cy, w, h, pooled_map.shape[1] // 2).to(
            boxes.dtype
        )  # PN x (C + 2)
        position = self.boxes_pos_enc_project(sine.view(num_prompts, num_boxes, -1))
        encoded: torch.Tensor = (
            direct + pooled + position + self.label_embed(prompt.box_labels.long())
        )
        return encoded

    def _encode_points(
        self, prompt: GeometryPrompt, pooled_map: torch.Tensor, image_index: torch.Tensor | None
    ) -> torch.Tensor:
        """P x M x C: direct + bilinearly sampled + sine-position projections + label embedding."""
        points = prompt.points.to(pooled_map.dtype)  # P x M x 2 xy
        num_prompts, num_points, _ = points.shape
        direct = self.points_direct_project(points)

        maps = select_rows(pooled_map, image_index, num_prompts)  # P x C x H x W
        grid = (points * 2 - 1).unsqueeze(2)  # P x M x 1 x 2 in [-1, 1]
        sampled = F.grid_sample(maps, grid, align_corners=False)  # P x C x M x 1
        pooled = self.points_pool_project(sampled.squeeze(-1).transpose(1, 2))  # P x M x C

        x, y = points.flatten(0, 1).unbind(-1)
        pos_x, pos_y = sine_encode_xy(x, y, pooled_map.shape[1] // 2)  # PM x C/2 each
        sine = torch.cat((pos_x, pos_y), dim=-1).to(points.dtype)  # x first for points (official)
        position = self.points_pos_enc_project(sine.view(num_prompts, num_points, -1))
        encoded: torch.Tensor = (
            direct + pooled + position + self.label_embed(prompt.point_labels.long())
        )
        return encoded


def _prompt_rows(
    index: torch.Tensor | None, num_prompts: int, device: torch.device
) -> torch.Tensor:
    return torch.arange(num_prompts, device=device) if index is None else index


def roi_align(
    features: torch.Tensor, boxes: torch.Tensor, batch_index: torch.Tensor, output_size: int
) -> torch.Tensor:
    """`torchvision.ops.roi_align(aligned=False, spatial_scale=1, sampling_ratio=-1)` in plain torch.

    features: B x C x H x W; boxes: K x 4 xyxy in feature pixels; batch_index: (K,) feature row of
    each box. Returns K x C x output_size x output_size. Each output bin averages a grid of
    ceil(roi_side / output_size) bilinear samples per axis (torchvision's adaptive sampling, with its
    border rules). Sampling along x and y is separable, so each ROI is two small matmuls with
    per-axis interpolation matrices instead of a gather per sample.
    """
    if boxes.shape[0] == 0:
        return features.new_zeros(0, features.shape[1], output_size, output_size)
    height, width = features.shape[-2:]
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    weights_y = _axis_weights(y0, y1, output_size, height)  # K x out x H
    weights_x = _axis_weights(x0, x1, output_size, width)  # K x out x W
    maps = features.index_select(0, batch_index)  # K x C x H x W
    pooled = torch.einsum("kyh,kchw->kcyw", weights_y.to(maps.dtype), maps)  # K x C x out x W
    return torch.einsum("kcyw,kxw->kcyx", pooled, weights_x.to(maps.dtype))  # K x C x out x out


def _axis_weights(start: torch.Tensor, end: torch.Tensor, bins: int, size: int) -> torch.Tensor:
    """(K,) ROI extents along one axis -> K x bins x size averaging-and-interpolation weights."""
    roi = (end - start).clamp(min=1.0)  # K
    bin_size = roi / bins
    samples = torch.ceil(roi / bins).long()  # K samples per bin (torchvision's adaptive grid)
    most = int(samples.max())
    bin_idx = torch.arange(bins, device=start.device, dtype=torch.float32)
    sample_idx = torch.arange(most, device=start.device, dtype=torch.float32)
    # K x bins x most sample coordinates: start + b * bin + (i + 0.5) * bin / samples
    coords = (
        start[:, None, None]
        + bin_idx[None, :, None] * bin_size[:, None, None]
        + (sample_idx[None, None, :] + 0.5) * bin_size[:, None, None] / samples[:, None, None]
    )
    used = sample_idx[None, None, :] < samples[:, None, None]  # K x 1 x most
    interp = _bilinear_weights(coords, size) * used[..., None]  # K x bins x most x size
    return interp.sum(dim=2) / samples[:, None, None]  # K x bins x size


def _bilinear_weights(coords: torch.Tensor, size: int) -> torch.Tensor:
    """(...) sample coordinates -> (..., size) linear-interpolation weights, torchvision's borders.

    Samples beyond [-1, size] contribute nothing; others are clamped into [0, size - 1].
    """
    inside = (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0)
    low = coords.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, size - 1, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(coords), coords - low)
    weights = coords.new_zeros(*coords.shape, size)
    weights.scatter_add_(-1, low[..., None], ((1 - frac) * inside)[..., None])
    weights.scatter_add_(-1, high[..., None], (frac * inside)[..., None])
    return weights
