"""Tensors for training from the concept world: prompted image batches and clip batches.

A detection batch holds B images and P >= B prompts; `image_index[p]` says which image prompt p
is about, so the image backbone runs once per image however many prompts it has.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.embedded.train.targets import PromptTargets
from model.embedded.world import ImageConfig, Scene, Split, image_sample


def normalise_images(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float32 in [-1, 1] (SAM 3: mean = std = 0.5)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()  # B x 3 x H x W
    return x / 127.5 - 1.0


def scene_targets(scene: Scene, indices: np.ndarray) -> PromptTargets:
    """The instances `indices` of a scene as normalised cxcywh boxes and float masks."""
    h, w = scene.image.shape[:2]
    xyxy = torch.from_numpy(scene.boxes[indices]).reshape(-1, 4)
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    x0, y0, x1, y1 = (xyxy / scale).unbind(-1)
    boxes = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)
    masks = torch.from_numpy(scene.masks[indices]).reshape(-1, h, w).float()
    return PromptTargets(boxes=boxes, masks=masks)


@dataclass(frozen=True)
class DetectionBatch:
    """images (B, 3, H, W) normalised; texts, image_index (P,) int64 and targets per prompt."""

    images: torch.Tensor
    texts: tuple[str, ...]
    image_index: torch.Tensor
    targets: tuple[PromptTargets, ...]

    def to(self, device: torch.device) -> DetectionBatch:
        return DetectionBatch(
            images=self.images.to(device),
            texts=self.texts,
            image_index=self.image_index.to(device),
            targets=tuple(
                PromptTargets(t.boxes.to(device), t.masks.to(device)) for t in self.targets
            ),
        )


def detection_batch(
    split: Split,
    indices: Sequence[int],
    config: ImageConfig,
    prompts_per_image: int = 1,
    foreign_rate: float = 0.0,
    foreign_words: Sequence[str] = (),
) -> DetectionBatch:
    """Samples `indices` of `split`, each with `prompts_per_image` prompts.

    With probability `foreign_rate`, a prompt after the first is replaced by a phrase built from
    `foreign_words` (words outside the world), whose target is empty.
    """
    samples = [image_sample(split, i, config, num_prompts=prompts_per_image) for i in indices]
    texts, image_index, targets = [], [], []
    for b, (index, s) in enumerate(zip(indices, samples, strict=True)):
        rng = split.rng(index, stream=3)
        for k, phrase in enumerate(s.phrases):
            image_index.append(b)
            if k > 0 and foreign_words and rng.random() < foreign_rate:
                words = [foreign_words[int(i)] for i in rng.integers(len(foreign_words), size=2)]
                # a foreign word alone, or in front of a world word ("person circle" is no circle)
                texts.append(words[0] if rng.random() < 0.5 else f"{words[0]} {phrase.text}")
                targets.append(scene_targets(s.scene, np.zeros(0, np.int64)))
                continue
            texts.append(phrase.text)
            targets.append(scene_targets(s.scene, s.scene.targets(phrase)))
    return DetectionBatch(
        images=normalise_images(np.stack([s.scene.image for s in samples])),
        texts=tuple(texts),
        image_index=torch.tensor(image_index, dtype=torch.int64),
        targets=tuple(targets),
    )


@dataclass(frozen=True)
class DetectionStream(torch.utils.data.Dataset[DetectionBatch]):
    """The detection batches of a run, by step: item `s` holds images `first + s * batch` onward.

    A map-style dataset so that a `DataLoader` can build batches in worker processes (a GPU
    trains faster than one core renders) while every step still sees exactly its own images.
    """

    split: Split
    first_sample: int
    batch_images: int
    config: ImageConfig
    prompts_per_image: int
    foreign_rate: float
    foreign_words: tuple[str, ...]

    def __getitem__(self, step: int) -> DetectionBatch:
        first = self.first_sample + step * self.batch_images
        return detection_batch(
            self.split,
            range(first, first + self.batch_images),
            self.config,
            self.prompts_per_image,
            self.foreign_rate,
            self.foreign_words,
        )

    def batches(self, steps: range, workers: int = 0) -> Iterator[DetectionBatch]:
        """The batches of `steps` in order, rendered by `workers` processes (0: in this one)."""
        if workers == 0:
            return (self[s] for s in steps)
        loader = torch.utils.data.DataLoader(
            self,
            batch_size=None,  # items are whole batches already
            sampler=steps,
            num_workers=workers,
            prefetch_factor=4,  # bounded: at most workers x 4 batches wait in memory
        )
        return iter(loader)
