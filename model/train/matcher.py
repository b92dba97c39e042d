"""Hungarian matching of decoder queries to ground-truth instances (DETR / SAM 3 recipe).

For each (image, prompt) pair, the cost of assigning query q to instance g is

    w_score * focal_cost(q) + w_l1 * |box_q - box_g|_1 - w_giou * GIoU(box_q, box_g)

and `scipy.optimize.linear_sum_assignment` picks the cheapest one-to-one assignment. With
`repeats = k > 1` every instance is offered k times, so up to k queries match each instance
(one-to-many matching, used as an auxiliary signal: more positives per step, faster scoring
convergence; the one-to-one term keeps predictions free of duplicates).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from model.box_ops import cxcywh_to_xyxy
from model.train.losses import LossWeights, Matching, PromptTargets, generalized_box_iou


def _focal_cost(scores: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """(Q,) logits -> (Q,) cost of labelling each query positive (lower = more confident)."""
    p = scores.sigmoid()
    a = alpha if alpha >= 0 else 0.5
    positive = a * (1 - p) ** gamma * -(p + 1e-8).log()
    negative = (1 - a) * p**gamma * -(1 - p + 1e-8).log()
    return positive - negative


@torch.no_grad()
def match_pair(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    target: PromptTargets,
    weights: LossWeights,
    repeats: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (Q,), boxes (Q, 4) -> matched (query indices, target indices), each (K,) int64.

    K = min(Q, G * repeats); with repeats > 1 a target index appears up to `repeats` times.
    """
    device = scores.device
    g = len(target)
    if g == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    cost = (
        weights.score
        * _focal_cost(scores.float(), weights.focal_alpha, weights.focal_gamma)[:, None]
        + weights.box_l1 * torch.cdist(boxes.float(), target.boxes.float(), p=1)
        - weights.box_giou
        * generalized_box_iou(cxcywh_to_xyxy(boxes.float()), cxcywh_to_xyxy(target.boxes.float()))
    )  # Q x G
    cost = cost.repeat(1, repeats)  # Q x (G * repeats): column j is target j % G
    rows, cols = linear_sum_assignment(np.nan_to_num(cost.cpu().numpy(), nan=1e6))
    return (
        torch.as_tensor(rows, dtype=torch.int64, device=device),
        torch.as_tensor(cols % g, dtype=torch.int64, device=device),
    )


def hungarian_match(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    targets: Sequence[PromptTargets],
    weights: LossWeights,
    repeats: int = 1,
) -> Matching:
    """scores (P, Q) logits, boxes (P, Q, 4) cxcywh -> the matching of every pair."""
    if scores.shape[0] != len(targets):
        raise ValueError(f"{scores.shape[0]} predictions but {len(targets)} targets")
    matches = [
        match_pair(scores[i], boxes[i], targets[i], weights, repeats) for i in range(len(targets))
    ]
    return Matching(queries=tuple(q for q, _ in matches), targets=tuple(t for _, t in matches))
