"""Pure box and mask geometry: format conversion, IoU matrices, masks to boxes.

Boxes are float tensors with the box coordinates in the last dimension:
`cxcywh` = (centre x, centre y, width, height), `xyxy` = (x0, y0, x1, y1). The functions work on
normalised [0, 1] coordinates and on pixels alike. Masks are boolean (or 0/1) tensors `N x H x W`.
"""

from __future__ import annotations

import torch


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) cxcywh -> (..., 4) xyxy."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) xyxy -> (..., 4) cxcywh."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), dim=-1)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """logit(x) with x clamped to [eps, 1 - eps] (the DETR box-refinement convention)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) xyxy -> (...) area; inverted boxes count as empty."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )


def box_intersection(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection areas of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])  # N x M x 2
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])  # N x M x 2
    return (bottom_right - top_left).clamp(min=0).prod(dim=-1)


def box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M). Empty unions give IoU 0."""
    inter = box_intersection(boxes_a, boxes_b)  # N x M
    union = box_area(boxes_a)[:, None] + box_area(boxes_b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def mask_iou(masks_a: torch.Tensor, masks_b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of binary masks: (N, H, W) x (M, H, W) -> (N, M) float32.

    Computed as one matmul of the flattened masks, so memory stays O((N + M) x H x W) instead of
    the N x M x H x W intermediate of a broadcast `&` (which the official code materialises).
    Two empty masks have IoU 0.
    """
    if masks_a.shape[-2:] != masks_b.shape[-2:]:
        raise ValueError(f"mask sizes differ: {tuple(masks_a.shape)} vs {tuple(masks_b.shape)}")
    flat_a = masks_a.flatten(1).float()  # N x HW
    flat_b = masks_b.flatten(1).float()  # M x HW
    inter = flat_a @ flat_b.T  # N x M
    union = flat_a.sum(1)[:, None] + flat_b.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy pixel boxes around (N, H, W) masks -> (N, 4) float; an empty mask gives zeros.

    The box covers whole pixels: a mask with only pixel (y, x) set gives (x, y, x + 1, y + 1).
    """
    n, height, width = masks.shape
    if n == 0:
        return torch.zeros(0, 4, device=masks.device)
    masks = masks.bool()
    rows = masks.any(dim=2)  # N x H
    cols = masks.any(dim=1)  # N x W
    ys = torch.arange(height, device=masks.device)
    xs = torch.arange(width, device=masks.device)
    y0 = torch.where(rows, ys, height).amin(dim=1)
    y1 = torch.where(rows, ys, -1).amax(dim=1) + 1
    x0 = torch.where(cols, xs, width).amin(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1) + 1
    boxes = torch.stack((x0, y0, x1, y1), dim=1).float()
    return torch.where(rows.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))
