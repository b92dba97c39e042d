"""Ground truth of a detection batch, and the matching of queries to it.

`PromptTargets` is one (image, prompt) pair's instances, as the data pipeline builds them.
`TargetBatch` lays a whole batch's instances out flat (one tensor of boxes, one of masks), so the
matcher and the losses gather them with one indexing op each instead of one small op (and, on a
GPU, one device sync) per instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

# padding of the matcher's per-pair target grid: a valid box, so no cost is ever NaN
_PAD_BOX = (0.5, 0.5, 1.0, 1.0)


@dataclass(frozen=True)
class PromptTargets:
    """Ground truth of one (image, prompt) pair: G instances (G may be 0).

    boxes (G, 4) normalised cxcywh; masks (G, H, W) float {0, 1} at the image resolution.
    """

    boxes: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass(frozen=True)
class TargetBatch:
    """The instances of P pairs, flat: N = sum of the pairs' G.

    boxes (N, 4) cxcywh; masks (N, H, W); owner (N,) the pair of each instance; counts (P,)
    instances per pair (a CPU tuple: the matcher loops over it without touching the device);
    present (P,) float, 1 where the pair has instances (made once: every layer's loss reads it).
    """

    boxes: torch.Tensor
    masks: torch.Tensor
    owner: torch.Tensor
    counts: tuple[int, ...]
    present: torch.Tensor

    @classmethod
    def of(cls, targets: Sequence[PromptTargets]) -> TargetBatch:
        if not targets:
            raise ValueError("a target batch needs at least one pair")
        counts = tuple(len(t) for t in targets)
        device = targets[0].boxes.device
        owner = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        return cls(
            boxes=torch.cat([t.boxes.reshape(-1, 4) for t in targets]).float(),
            masks=torch.cat([t.masks for t in targets]).float(),
            owner=owner.to(device),
            counts=counts,
            present=torch.tensor([float(g > 0) for g in counts], device=device),
        )

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def num_instances(self) -> int:
        return sum(self.counts)

    @property
    def mask_size(self) -> tuple[int, int]:
        return cast(tuple[int, int], tuple(self.masks.shape[-2:]))

    def padded_boxes(self) -> torch.Tensor:
        """(P, G_max, 4): each pair's boxes, padded with a valid dummy box (G_max >= 1)."""
        width = max(max(self.counts), 1)
        padded = self.boxes.new_tensor(_PAD_BOX).repeat(len(self), width, 1)
        slot = torch.cat([torch.arange(g) for g in self.counts]).to(self.boxes.device)
        padded[self.owner, slot] = self.boxes
        return padded


@dataclass(frozen=True)
class Matching:
    """Every match of a batch, flat: K matches, each (K,) int64 on the predictions' device.

    pair and query index the predictions; instance indexes the `TargetBatch` (flat).
    """

    pair: torch.Tensor
    query: torch.Tensor
    instance: torch.Tensor

    def __len__(self) -> int:
        return int(self.pair.shape[0])
