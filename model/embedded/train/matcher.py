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

from model.embedded.train.losses import LossWeights, generalized_box_iou
from model.embedded.train.targets import Matching, PromptTargets, TargetBatch
from model.nn.box_ops import cxcywh_to_xyxy


def _focal_cost(scores: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """(..., Q) logits -> (..., Q) cost of labelling each query positive (lower = more confident)."""
    p = scores.sigmoid()
    a = alpha if alpha >= 0 else 0.5
    positive = a * (1 - p) ** gamma * -(p + 1e-8).log()
    negative = (1 - a) * p**gamma * -(1 - p + 1e-8).log()
    return positive - negative


@torch.no_grad()
def match_costs(
    scores: torch.Tensor, boxes: torch.Tensor, targets: TargetBatch, weights: LossWeights
) -> torch.Tensor:
    """scores (..., P, Q), boxes (..., P, Q, 4) -> (..., P, Q, G_max) assignment costs.

    Column g of pair i is instance g of that pair; columns past its count are padding.
    """
    gt = targets.padded_boxes()  # P x G x 4
    boxes = boxes.float()
    gt = gt.expand(*boxes.shape[:-2], *gt.shape[-2:])
    return (
        weights.score
        * _focal_cost(scores.float(), weights.focal_alpha, weights.focal_gamma)[..., None]
        + weights.box_l1 * torch.cdist(boxes, gt, p=1)
        - weights.box_giou * generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(gt))
    )


def _assign(cost: np.ndarray, counts: Sequence[int], repeats: int) -> tuple[np.ndarray, ...]:
    """One layer's (P, Q, G_max) costs -> flat (pair, query, target-within-pair) of its matches.

    With repeats = k every instance is offered k times (column j is instance j % G).
    """
    pairs, queries, instances = [], [], []
    for i, g in enumerate(counts):
        if g == 0:
            continue
        block = np.nan_to_num(np.tile(cost[i, :, :g], (1, repeats)), nan=1e6)
        rows, cols = linear_sum_assignment(block)
        pairs.append(np.full(len(rows), i))
        queries.append(rows)
        instances.append(cols % g)
    if not pairs:
        return (np.zeros(0, np.int64),) * 3
    return tuple(np.concatenate(a).astype(np.int64) for a in (pairs, queries, instances))


def match_layers(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    targets: TargetBatch,
    weights: LossWeights,
    repeats: Sequence[int],
) -> list[Matching]:
    """scores (L, P, Q) logits, boxes (L, P, Q, 4) cxcywh -> each layer's matching.

    The costs of every layer and pair come to the CPU in one transfer (on a GPU, one sync per
    batch rather than one per pair); `repeats[l]` is layer l's one-to-many factor.
    """
    layers, pairs = scores.shape[:2]
    if pairs != len(targets):
        raise ValueError(f"{pairs} predictions but {len(targets)} targets")
    if len(repeats) != layers:
        raise ValueError(f"{len(repeats)} repeat factors for {layers} layers")
    cost = match_costs(scores, boxes, targets, weights).cpu().numpy()
    first = np.cumsum((0, *targets.counts[:-1]))  # flat index of each pair's first instance
    device = scores.device
    matchings = []
    for layer, k in enumerate(repeats):
        pair, query, within = _assign(cost[layer], targets.counts, k)
        flat = np.stack([pair, query, first[pair] + within]) if len(pair) else np.zeros((3, 0))
        pair_t, query_t, instance_t = torch.as_tensor(flat, dtype=torch.int64).to(device)
        matchings.append(Matching(pair_t, query_t, instance_t))
    return matchings


def hungarian_match(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    targets: TargetBatch,
    weights: LossWeights,
    repeats: int = 1,
) -> Matching:
    """scores (P, Q) logits, boxes (P, Q, 4) cxcywh -> the matching of every pair."""
    return match_layers(scores[None], boxes[None], targets, weights, [repeats])[0]


def match_pair(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    target: PromptTargets,
    weights: LossWeights,
    repeats: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pair: scores (Q,), boxes (Q, 4) -> matched (query indices, target indices), each (K,).

    K = min(Q, G * repeats); with repeats > 1 a target index appears up to `repeats` times.
    """
    m = hungarian_match(scores[None], boxes[None], TargetBatch.of([target]), weights, repeats)
    return m.query, m.instance
