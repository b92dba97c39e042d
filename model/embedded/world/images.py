"""Prompted still images: a scene built around a phrase, with distractors and negatives.

`sample_image` draws a phrase, decides whether the image should contain it, puts 1-4 matching
objects in (or none), adds distractors that differ from the phrase in exactly one attribute, adds
unrelated objects, and renders. Further prompts for the same image are a mix of phrases that name a
visible object and hard negatives (one named attribute changed so nothing visible matches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from model.embedded.world import render
from model.embedded.world.concepts import Attributes, Colour, Phrase, Shape, Size, Texture
from model.embedded.world.scene import (
    Scene,
    WorldConfig,
    compose,
    place,
    random_attributes,
    visible_fractions,
)

T = TypeVar("T")


@dataclass(frozen=True)
class ImageConfig:
    """How prompted still images are drawn."""

    world: WorldConfig = WorldConfig()
    negative_rate: float = 0.35  # share of primary prompts with no matching object
    max_targets: int = 4
    max_distractors: int = 3
    max_others: int = 3
    min_visible: float = 0.5  # placement is retried while an object is more hidden than this
    placement_tries: int = 4


@dataclass(frozen=True)
class PromptedImage:
    """One scene and P phrases; `scene.targets(phrase)` gives each phrase's instances."""

    scene: Scene
    phrases: tuple[Phrase, ...]


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(len(options)))]


def _choose_phrase(rng: np.random.Generator, by_count: dict[int, list[Phrase]]) -> Phrase:
    """Uniform over the number of named attributes, then uniform within that group."""
    counts = sorted(by_count)
    group = by_count[counts[int(rng.integers(len(counts)))]]
    return group[int(rng.integers(len(group)))]


def _instance_of(rng: np.random.Generator, phrase: Phrase) -> Attributes:
    """Random attributes that the phrase matches."""
    free = random_attributes(rng)
    return Attributes(
        shape=phrase.shape,
        colour=phrase.colour or free.colour,
        size=phrase.size or free.size,
        texture=phrase.texture or free.texture,
    )


def _change_one(rng: np.random.Generator, attrs: Attributes, phrase: Phrase) -> Attributes:
    """`attrs` with one attribute the phrase names replaced by a different value."""
    named = ["shape"] + [k for k in ("colour", "size", "texture") if getattr(phrase, k)]
    key = _pick(rng, named)
    kind: type[Enum] = {"shape": Shape, "colour": Colour, "size": Size, "texture": Texture}[key]
    current = getattr(attrs, key)
    change: dict[str, Any] = {key: _pick(rng, [m for m in kind if m is not current])}
    return dataclasses.replace(attrs, **change)


def _non_matching(rng: np.random.Generator, phrase: Phrase) -> Attributes:
    while True:
        attrs = random_attributes(rng)
        if not phrase.matches(attrs):
            return attrs


def sample_image(
    rng: np.random.Generator,
    config: ImageConfig,
    phrases: Sequence[Phrase],
    num_prompts: int = 1,
) -> PromptedImage:
    """Draw one image around a primary phrase from `phrases`, plus `num_prompts - 1` more prompts.

    Every prompt is drawn from `phrases`, so a held-out split stays held out.
    """
    if num_prompts < 1:
        raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
    by_count: dict[int, list[Phrase]] = {}
    for p in phrases:
        by_count.setdefault(p.num_attributes, []).append(p)
    primary = _choose_phrase(rng, by_count)

    attrs: list[Attributes] = []
    if rng.random() >= config.negative_rate:
        attrs += [
            _instance_of(rng, primary) for _ in range(int(rng.integers(1, config.max_targets + 1)))
        ]
    for _ in range(int(rng.integers(0, config.max_distractors + 1))):
        attrs.append(_change_one(rng, _instance_of(rng, primary), primary))
    for _ in range(int(rng.integers(0, config.max_others + 1))):
        attrs.append(
            _non_matching(rng, primary)
            if not attrs or rng.random() < 0.7
            else random_attributes(rng)
        )
    order = rng.permutation(len(attrs))  # z-order
    # a few placement tries so that every object stays mostly visible (overlaps still happen)
    for _ in range(config.placement_tries):
        objects = [place(rng, i, attrs[j], config.world) for i, j in enumerate(order)]
        if not objects or visible_fractions(objects, config.world.hw).min() >= config.min_visible:
            break
    scene = compose(render.background(rng, config.world.hw), objects, rng, config.world)

    allowed = set(phrases)
    prompts = [primary]
    while len(prompts) < num_prompts:
        prompts.append(_extra_prompt(rng, scene, allowed, by_count))
    return PromptedImage(scene=scene, phrases=tuple(prompts))


def _extra_prompt(
    rng: np.random.Generator,
    scene: Scene,
    allowed: set[Phrase],
    by_count: dict[int, list[Phrase]],
) -> Phrase:
    """A phrase naming a visible object (half the time) or a hard negative for one."""
    for _ in range(20):
        if not scene.attributes:
            break
        a = scene.attributes[int(rng.integers(len(scene.attributes)))]
        keep = rng.random(3) < 0.5
        phrase = Phrase(
            shape=a.shape,
            colour=a.colour if keep[0] else None,
            size=a.size if keep[1] else None,
            texture=a.texture if keep[2] and a.texture is not Texture.PLAIN else None,
        )
        if rng.random() < 0.5:
            changed = _change_one(rng, a, phrase)
            phrase = Phrase(
                shape=changed.shape,
                colour=changed.colour if phrase.colour else None,
                size=changed.size if phrase.size else None,
                texture=changed.texture if phrase.texture else None,
            )
            if phrase.texture is Texture.PLAIN or len(scene.targets(phrase)):
                continue  # "plain" is never named; a negative must match nothing
        if phrase in allowed:
            return phrase
    return _choose_phrase(rng, by_count)
