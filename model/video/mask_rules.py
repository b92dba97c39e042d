"""Pure mask clean-up rules of the online video loop (docs/video.md, "Per frame").

All functions take mask logits or binary masks on one grid and return new tensors; `groups`
(N,) are concept ids: objects of different concepts never compete for pixels or suppress each
other (HF `Sam3VideoModel` prompt groups).

Hole filling labels connected components with scipy on the host: the masks are small (the
tracker's low-res grid) and it keeps the code device-agnostic. 8-connectivity, as skimage /
cc_torch in the official code.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from model.nn.box_ops import mask_iou
from model.tracker.mask_decoder import upcast

NEVER_OCCLUDED = -1
ALWAYS_OCCLUDED = 1 << 40  # objects just removed by hot-start lose every overlap
# sigmoid(-10) = 4.5e-5: what the official code writes into suppressed masks
NO_OBJECT_LOGIT = -10.0


def _same_group(groups: torch.Tensor) -> torch.Tensor:
    return groups[:, None] == groups[None, :]  # N x N


def occlusion_suppression(
    masks: torch.Tensor, last_occluded: torch.Tensor, groups: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Which objects to suppress among overlapping pairs: (N, H, W) bool -> (N,) bool.

    For each same-group pair with IoU >= `iou_threshold`, the object occluded more recently
    (larger `last_occluded` frame) is suppressed, provided the other one has been occluded at some
    point (>= 0). Equal frames suppress neither.
    """
    n = int(masks.shape[0])
    if n <= 1 or iou_threshold <= 0:
        return torch.zeros(n, dtype=torch.bool, device=masks.device)
    overlapping = (mask_iou(masks, masks) >= iou_threshold) & _same_group(groups)
    overlapping = torch.triu(overlapping, diagonal=1)  # pairs i < j
    occ_i, occ_j = last_occluded[:, None], last_occluded[None, :]
    suppress_i = overlapping & (occ_i > occ_j) & (occ_j > NEVER_OCCLUDED)
    suppress_j = overlapping & (occ_j > occ_i) & (occ_i > NEVER_OCCLUDED)
    return suppress_i.any(1) | suppress_j.any(0)


def hidden_by_lookalikes(
    last_masks: torch.Tensor, masks: torch.Tensor, groups: torch.Tensor, cover: float
) -> torch.Tensor:
    """Which objects lie under objects of their own concept: (N,) bool.

    `last_masks` (N, H, W) bool are each object's last visible masks (empty: never seen),
    `masks` (N, H, W) bool this frame's. An object is hidden when at least `cover` of its last
    visible mask is covered by the union of the other same-group objects' masks this frame.
    """
    n = int(masks.shape[0])
    others = _same_group(groups) & ~torch.eye(n, dtype=torch.bool, device=masks.device)
    covered = (others.float() @ masks.flatten(1).float()) > 0  # N x HW: under some look-alike
    last = last_masks.flatten(1)
    area = last.sum(1)
    return (area > 0) & ((last & covered).sum(1) >= cover * area)


def pixelwise_owner(scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Per pixel, whether each object has the highest score of its group: (N, H, W) -> (N, H, W) bool.

    Ties go to the lower index (argmax order).
    """
    n = int(scores.shape[0])
    owner = torch.ones_like(scores, dtype=torch.bool)
    if n <= 1:
        return owner
    for g in torch.unique(groups).tolist():
        idx = torch.nonzero(groups == g).flatten()
        if idx.numel() <= 1:
            continue
        # H x W, position within the group; max(0).indices is argmax(0) (first maximum on
        # ties, as documented) but several times faster on CPU for a leading reduced dim
        best = scores[idx].max(0).indices
        owner[idx] = best[None] == torch.arange(idx.numel(), device=scores.device)[:, None, None]
    return owner


def suppress_shrunk(logits: torch.Tensor, groups: torch.Tensor, min_kept: float) -> torch.Tensor:
    """Memory-side non-overlap: (N, H, W) logits -> (N, H, W) logits.

    Each pixel goes to the object with the highest logit; an object that would keep less than
    `min_kept` of its area is suppressed entirely (clamped to <= -10). The others keep their
    original, overlapping logits: only whole objects are removed.
    """
    if logits.shape[0] <= 1:
        return logits
    owned = pixelwise_owner(logits, groups)
    area_before = (logits > 0).flatten(1).sum(1).clamp(min=1)
    area_after = ((logits > 0) & owned).flatten(1).sum(1)
    keep = area_after / area_before >= min_kept
    return torch.where(keep[:, None, None], logits, logits.clamp(max=NO_OBJECT_LOGIT))


def memory_non_overlap(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Pixel-wise memory non-overlap (SAM 2's `non_overlap_masks_for_mem_enc`): (N, H, W) logits
    -> (N, H, W) logits where each pixel stays foreground only for the object of its group with
    the highest logit; the others are clamped to <= -10 there."""
    if logits.shape[0] <= 1:
        return logits
    owned = pixelwise_owner(logits, groups)
    return torch.where(owned, logits, logits.clamp(max=NO_OBJECT_LOGIT))


def object_non_overlap(
    masks: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """Output-side non-overlap: (N, H, W) bool, (N,) scores -> (N, H, W) bool.

    Each overlapping pixel goes to the object with the highest (tracker) score of its group.
    """
    if masks.shape[0] <= 1:
        return masks
    per_pixel = torch.where(masks, upcast(scores)[:, None, None], 0.0)
    return masks & pixelwise_owner(per_pixel, groups)


_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _component_areas(binary: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) int: the area of the 8-connected component each pixel is in (0 off)."""
    labels, count = ndimage.label(binary, structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros(binary.shape, dtype=np.int64)
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    per_pixel: np.ndarray = areas[labels]
    return per_pixel


def fill_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Clean small holes and sprinkles: (N, H, W) logits -> (N, H, W) logits.

    Background components of area <= max_area become foreground (logit 0.1); then foreground
    components of area <= min(max_area, area // 2) become background (logit -0.1), so a tiny
    object is never erased whole.
    """
    if max_area <= 0 or logits.shape[0] == 0:
        return logits
    host = upcast(logits.detach()).cpu().numpy()
    out = host.copy()
    for i, mask in enumerate(host):
        background = mask <= 0
        out[i][background & (_component_areas(background) <= max_area)] = 0.1
        foreground = out[i] > 0
        limit = min(max_area, int(foreground.sum()) // 2)
        out[i][foreground & (_component_areas(foreground) <= limit)] = -0.1
    return torch.from_numpy(out).to(device=logits.device, dtype=logits.dtype)


def drop_sprinkles(masks: torch.Tensor, max_area: int) -> torch.Tensor:
    """(N, H, W) bool -> the masks without stray components: foreground components of area
    <= min(max_area, area // 2), but never a mask's largest one (`fill_holes`' second half).

    For geometry: one stray pixel far from an object would stretch its box across the frame.
    """
    if max_area <= 0 or masks.shape[0] == 0:
        return masks
    host = masks.detach().cpu().numpy()
    out = host.copy()
    for i, mask in enumerate(host):
        areas = _component_areas(mask)
        limit = min(max_area, int(mask.sum()) // 2)
        out[i] &= (areas > limit) | (areas == areas.max())
    return torch.from_numpy(out).to(masks.device)
