"""Evaluation loops over held-out world samples, for any detector or tracker given as a callable.

The loops know nothing about the model: `Detect` maps one image and its phrases to predicted
masks and scores, `Track` maps a clip's frames and one phrase to per-frame objects with ids.
bench/eval.py binds them to the real model; tests bind them to oracles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from model.embedded.eval.image_metrics import ImageMetrics, PairOutcome, evaluate_pair, summarize
from model.embedded.eval.video_metrics import FrameObjects, VideoCounts, count_clip
from model.embedded.world import (
    ClipConfig,
    ImageConfig,
    Phrase,
    Scene,
    Split,
    clip_phrases,
    clip_sample,
    image_sample,
)


@dataclass(frozen=True)
class Prediction:
    """Predictions for one (image, phrase): masks (D, H, W) bool and scores (D,) in [0, 1]."""

    masks: np.ndarray
    scores: np.ndarray


Detect = Callable[[np.ndarray, Sequence[str]], Sequence[Prediction]]
Track = Callable[[Iterable[np.ndarray], str], Iterator[FrameObjects]]


def evaluate_images(
    detect: Detect,
    split: Split,
    num_images: int,
    config: ImageConfig | None = None,
    prompts_per_image: int = 2,
    score_threshold: float = 0.5,
    first_index: int = 0,
) -> ImageMetrics:
    """cgF1 and friends over `num_images` samples of `split` with `prompts_per_image` phrases each."""
    outcomes: list[PairOutcome] = []
    for index in range(first_index, first_index + num_images):
        sample = image_sample(split, index, config, num_prompts=prompts_per_image)
        predictions = detect(sample.scene.image, [p.text for p in sample.phrases])
        if len(predictions) != len(sample.phrases):
            raise ValueError(f"{len(predictions)} predictions for {len(sample.phrases)} phrases")
        for phrase, pred in zip(sample.phrases, predictions, strict=True):
            keep = pred.scores >= score_threshold
            gt = sample.scene.masks[sample.scene.targets(phrase)]
            outcomes.append(evaluate_pair(pred.masks[keep], gt))
    return summarize(outcomes)


@dataclass(frozen=True)
class ClipEvaluation:
    """Counts over the positive-phrase runs and the negative-phrase runs, and tracker time."""

    positive: VideoCounts
    negative: VideoCounts
    frames: int
    seconds: float  # wall time inside the tracker

    @property
    def fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def visible_targets(frames: Sequence[Scene], phrase: Phrase) -> list[FrameObjects]:
    """Per frame, the visible objects the phrase names."""
    out = []
    for f in frames:
        idx = f.targets(phrase)
        out.append(FrameObjects(ids=f.ids[idx], masks=f.masks[idx]))
    return out


def _timed(track: Track, images: list[np.ndarray], text: str) -> tuple[list[FrameObjects], float]:
    start = time.perf_counter()
    results = list(track(iter(images), text))
    return results, time.perf_counter() - start


def evaluate_clips(
    track: Track,
    split: Split,
    num_clips: int,
    config: ClipConfig | None = None,
    first_index: int = 0,
) -> ClipEvaluation:
    """Each clip is tracked twice: with a phrase naming some of its objects and one naming none."""
    config = config or ClipConfig()
    allowed = set(split.phrases())
    positive, negative = VideoCounts(), VideoCounts()
    frames, seconds = 0, 0.0
    for index in range(first_index, first_index + num_clips):
        clip = clip_sample(split, index, config)
        pos_phrase, neg_phrase = clip_phrases(clip, split.rng(index, stream=2), allowed)
        images = [f.image for f in clip.frames]
        for phrase, is_positive in ((pos_phrase, True), (neg_phrase, False)):
            if phrase is None:
                continue
            predicted, elapsed = _timed(track, images, phrase.text)
            counts = count_clip(visible_targets(clip.frames, phrase), predicted)
            frames, seconds = frames + len(images), seconds + elapsed
            if is_positive:
                positive = positive + counts
            else:
                negative = negative + counts
    return ClipEvaluation(positive=positive, negative=negative, frames=frames, seconds=seconds)
