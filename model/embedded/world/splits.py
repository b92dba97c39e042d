"""Deterministic, disjoint sample streams: training, held-out seeds, held-out phrases.

Sample `index` of split `s` is drawn from `np.random.default_rng([s.code, index])`, so every
sample is reproducible on its own (no hidden state, any order, any number of workers) and the
streams of different splits never share a seed.
"""

from __future__ import annotations

import enum

import numpy as np

from model.embedded.world.clips import Clip, ClipConfig, sample_clip
from model.embedded.world.concepts import Phrase, held_out_phrases, training_phrases
from model.embedded.world.images import ImageConfig, PromptedImage, sample_image

# Training reads TRAIN indices below this one; validation (operating points, tracker settings)
# reads from it up, so a chosen threshold is never fitted on images the model was trained on.
VALIDATION_FIRST_INDEX = 10_000_000


class Split(enum.Enum):
    TRAIN = "train"  # training seeds, training phrases
    HELD_OUT_SEEDS = "held_out_seeds"  # unseen seeds, training phrases
    HELD_OUT_PHRASES = "held_out_phrases"  # unseen seeds, held-out (colour, shape) phrases

    @property
    def code(self) -> int:
        return {"train": 0, "held_out_seeds": 1, "held_out_phrases": 2}[self.value]

    def phrases(self) -> tuple[Phrase, ...]:
        return held_out_phrases() if self is Split.HELD_OUT_PHRASES else training_phrases()

    def rng(self, index: int, stream: int = 0) -> np.random.Generator:
        """The generator of sample `index`; `stream` separates images (0) from clips (1)."""
        if index < 0:
            raise ValueError(f"sample index must be >= 0, got {index}")
        return np.random.default_rng([self.code, stream, index])


def image_sample(
    split: Split, index: int, config: ImageConfig | None = None, num_prompts: int = 1
) -> PromptedImage:
    config = config or ImageConfig()
    return sample_image(split.rng(index), config, split.phrases(), num_prompts=num_prompts)


def clip_sample(split: Split, index: int, config: ClipConfig | None = None) -> Clip:
    return sample_clip(split.rng(index, stream=1), config or ClipConfig())
