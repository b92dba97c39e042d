"""The detector's training objective: match, then sum the loss terms over decoder layers.

The final decoder layer gets every term (scores, boxes, masks, presence, semantic); each
intermediate layer gets scores, boxes and presence with its own matching (auxiliary losses).
Intermediate layers may use one-to-many matching (`aux_repeats` > 1): more positive queries per
step while the final layer stays one-to-one, so inference needs no NMS to remove duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from model.embedded.train.losses import (
    LossTerms,
    LossWeights,
    mask_losses,
    presence_loss,
    score_and_box_losses,
    semantic_loss,
)
from model.embedded.train.matcher import match_layers
from model.embedded.train.targets import PromptTargets, TargetBatch


@dataclass(frozen=True)
class DetectionPredictions:
    """Raw detector outputs for P (image, prompt) pairs, Q queries, L decoder layers.

    scores (L, P, Q) logits (not yet multiplied by presence); boxes (L, P, Q, 4) normalised
    cxcywh; presence (L, P) logits; masks (P, Q, h, w) logits of the final layer; semantic
    (P, 1, h, w) logits or None.
    """

    scores: torch.Tensor
    boxes: torch.Tensor
    presence: torch.Tensor
    masks: torch.Tensor
    semantic: torch.Tensor | None = None

    def __post_init__(self) -> None:
        layers, pairs, queries = self.scores.shape
        if self.boxes.shape != (layers, pairs, queries, 4):
            raise ValueError(
                f"boxes {tuple(self.boxes.shape)} vs scores {tuple(self.scores.shape)}"
            )
        if self.presence.shape != (layers, pairs):
            raise ValueError(f"presence {tuple(self.presence.shape)}, expected {(layers, pairs)}")
        if self.masks.shape[:2] != (pairs, queries):
            raise ValueError(
                f"masks {tuple(self.masks.shape)}, expected ({pairs}, {queries}, h, w)"
            )


def detection_loss(
    pred: DetectionPredictions,
    targets: Sequence[PromptTargets] | TargetBatch,
    weights: LossWeights,
    aux_repeats: int = 1,
) -> LossTerms:
    """Sum of the weighted terms over layers; logged values are the final layer's, unweighted."""
    batch = targets if isinstance(targets, TargetBatch) else TargetBatch.of(targets)
    num_instances = float(max(batch.num_instances, 1))
    layers = pred.scores.shape[0]
    repeats = [aux_repeats] * (layers - 1) + [1]  # the final layer stays one-to-one
    matchings = match_layers(pred.scores, pred.boxes, batch, weights, repeats)
    total = pred.scores.new_zeros(())
    for layer, (matching, k) in enumerate(zip(matchings, repeats, strict=True)):
        scores, boxes = pred.scores[layer], pred.boxes[layer]
        score, l1, giou = score_and_box_losses(
            scores, boxes, batch, matching, weights, num_instances * k
        )
        presence = presence_loss(pred.presence[layer], batch)
        layer_total = (
            weights.score * score
            + weights.box_l1 * l1
            + weights.box_giou * giou
            + weights.presence * presence
        )
        if layer < layers - 1:
            total = total + weights.aux * layer_total
            continue
        focal, dice = mask_losses(pred.masks, batch, matching, num_instances)
        semantic = semantic_loss(pred.semantic, batch) if pred.semantic is not None else focal * 0
        total = total + layer_total + weights.mask_focal * focal + weights.mask_dice * dice
        total = total + weights.semantic * semantic
        terms = (score, l1, giou, focal, dice, presence, semantic)
    logged = (float(t.detach()) for t in terms)
    score_v, l1_v, giou_v, focal_v, dice_v, presence_v, semantic_v = logged
    return LossTerms(
        total=total,
        score=score_v,
        box_l1=l1_v,
        box_giou=giou_v,
        mask_focal=focal_v,
        mask_dice=dice_v,
        presence=presence_v,
        semantic=semantic_v,
    )
