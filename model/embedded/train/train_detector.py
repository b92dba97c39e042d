"""One optimisation step of the detector on a batch of prompted world images (pure: no file I/O).

The step runs the real `Detector` API the way inference does (image encoded once, prompts
pointing at their image rows), with deep supervision on every decoder layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from model.backbone.tokenizer import TokenBatch
from model.detector.detector import Detector, DetectorOutput, LayerPrediction
from model.embedded.train.criterion import DetectionPredictions, detection_loss
from model.embedded.train.data import DetectionBatch
from model.embedded.train.losses import LossTerms, LossWeights


@dataclass(frozen=True)
class DetectorSchedule:
    """Optimisation hyperparameters of the detector phase."""

    steps: int = 6000
    batch_images: int = 16
    prompts_per_image: int = 2
    lr: float = 1e-3
    min_lr_ratio: float = 0.05  # cosine decay ends at lr x this
    warmup_steps: int = 200
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    aux_repeats: int = 1  # > 1: one-to-many matching on the intermediate decoder layers
    bf16: bool = True  # bfloat16 autocast for the forward pass (AMX / tensor cores); losses in fp32
    weights: LossWeights = field(default_factory=LossWeights)


def lr_factor(step: int, steps: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay from 1 to `min_ratio` at `steps`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(steps - warmup, 1))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(module: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and kernels only (not on norms, biases, embeddings)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        plain_matrix = p.ndim >= 2 and "embed" not in name and "pos" not in name
        (decay if plain_matrix else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def predictions_from(out: DetectorOutput) -> DetectionPredictions:
    """Stack the aux layers and the final layer into the criterion's (L, P, ...) layout."""
    layers: tuple[LayerPrediction | DetectorOutput, ...] = (*out.aux, out)
    return DetectionPredictions(
        scores=torch.stack([layer.logits for layer in layers]).float(),  # L x P x Q
        boxes=torch.stack([layer.boxes for layer in layers]).float(),  # L x P x Q x 4
        presence=torch.stack([layer.presence_logits for layer in layers]).float(),  # L x P
        masks=out.mask_logits.float(),
        semantic=out.semantic_logits.float(),
    )


def detector_loss(
    detector: Detector, batch: DetectionBatch, tokens: TokenBatch, schedule: DetectorSchedule
) -> LossTerms:
    with torch.autocast(batch.images.device.type, dtype=torch.bfloat16, enabled=schedule.bf16):
        image = detector.encode_image(batch.images)
        text = detector.encode_text(tokens.ids, tokens.padding_mask)
        prompt = detector.encode_prompt(image, text, None, batch.image_index)
        out = detector.decode(image, prompt, aux=True)
    return detection_loss(
        predictions_from(out), batch.targets, schedule.weights, schedule.aux_repeats
    )


def detector_step(
    detector: Detector,
    optimizer: torch.optim.Optimizer,
    batch: DetectionBatch,
    tokens: TokenBatch,
    schedule: DetectorSchedule,
    step: int,
) -> LossTerms:
    """Set the learning rate for `step`, compute the loss, back-propagate, clip, update."""
    factor = lr_factor(step, schedule.steps, schedule.warmup_steps, schedule.min_lr_ratio)
    for group in optimizer.param_groups:
        group["lr"] = schedule.lr * factor
    detector.train()
    terms = detector_loss(detector, batch, tokens, schedule)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()  # type: ignore[no-untyped-call]  # Tensor.backward is untyped in torch
    torch.nn.utils.clip_grad_norm_(detector.parameters(), schedule.grad_clip)
    optimizer.step()
    return terms
