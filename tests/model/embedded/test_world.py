"""The concept world generator: determinism, split hygiene, ground-truth consistency, clips."""

from __future__ import annotations

import numpy as np
import pytest

from model.embedded.world import (
    ClipConfig,
    Phrase,
    Split,
    WorldConfig,
    all_phrases,
    clip_phrases,
    clip_sample,
    held_out_phrases,
    image_sample,
    render,
    training_phrases,
    vocabulary_words,
)
from model.embedded.world.concepts import Texture, is_held_out
from model.embedded.world.scene import masks_to_boxes


def test_vocabulary_is_large_and_round_trips() -> None:
    phrases = all_phrases()
    assert len(set(p.text for p in phrases)) == len(phrases) >= 40
    for p in phrases:
        assert Phrase.parse(p.text) == p
    assert set(training_phrases()).isdisjoint(held_out_phrases())
    assert all(is_held_out(p) for p in held_out_phrases())
    words = set(vocabulary_words())
    assert all(set(p.text.split()) <= words for p in phrases)


@pytest.mark.parametrize("text", ["", "red", "red red circle", "blue car", "circle red"])
def test_parse_rejects_words_outside_the_world(text: str) -> None:
    with pytest.raises(ValueError):
        Phrase.parse(text)


def test_samples_are_deterministic_and_splits_differ() -> None:
    a = image_sample(Split.TRAIN, 7, num_prompts=3)
    b = image_sample(Split.TRAIN, 7, num_prompts=3)
    assert np.array_equal(a.scene.image, b.scene.image)
    assert np.array_equal(a.scene.masks, b.scene.masks)
    assert a.phrases == b.phrases
    c = image_sample(Split.HELD_OUT_SEEDS, 7, num_prompts=3)
    assert not np.array_equal(a.scene.image, c.scene.image)


def test_ground_truth_is_consistent() -> None:
    for i in range(30):
        s = image_sample(Split.TRAIN, i, num_prompts=2).scene
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.shape == (h, w, 3)
        assert s.masks.shape == (len(s.ids), h, w) and s.boxes.shape == (len(s.ids), 4)
        assert len(set(s.ids.tolist())) == len(s.ids)
        assert (s.masks.sum(axis=0) <= 1).all(), "visible masks must not overlap"
        assert (s.masks.sum(axis=(1, 2)) >= WorldConfig().min_area).all()
        assert np.array_equal(s.boxes, masks_to_boxes(s.masks))


def test_prompts_respect_the_split_and_include_negatives() -> None:
    primary_empty = 0
    n = 120
    for i in range(n):
        sample = image_sample(Split.TRAIN, i, num_prompts=4)
        assert not any(is_held_out(p) for p in sample.phrases)
        primary_empty += len(sample.scene.targets(sample.phrases[0])) == 0
    assert 0.2 * n < primary_empty < 0.55 * n
    for i in range(20):
        sample = image_sample(Split.HELD_OUT_PHRASES, i, num_prompts=2)
        assert all(is_held_out(p) for p in sample.phrases)


def test_distractors_differ_in_one_attribute() -> None:
    """Most positive images hold an object that the phrase almost, but not quite, names."""
    near_misses = 0
    for i in range(60):
        sample = image_sample(Split.TRAIN, i)
        phrase = sample.phrases[0]
        for a in sample.scene.attributes:
            named = [
                phrase.shape is a.shape,
                phrase.colour in (None, a.colour),
                phrase.size in (None, a.size),
                phrase.texture in (None, a.texture),
            ]
            near_misses += sum(not ok for ok in named) == 1
    assert near_misses >= 30


def test_clip_ids_persist_and_objects_come_and_go() -> None:
    config = ClipConfig(num_frames=24)
    changes = occluded = 0
    for index in range(4):
        clip = clip_sample(Split.HELD_OUT_SEEDS, index, config)
        assert len(clip.frames) == 24
        attrs: dict[int, object] = {}
        areas: dict[int, list[int]] = {}
        for f in clip.frames:
            for j, oid in enumerate(f.ids.tolist()):
                assert attrs.setdefault(oid, f.attributes[j]) == f.attributes[j]
                areas.setdefault(oid, []).append(int(f.masks[j].sum()))
        id_sets = [frozenset(f.ids.tolist()) for f in clip.frames]
        changes += len(set(id_sets)) > 1
        occluded += any(min(a) < 0.6 * max(a) for a in areas.values())
        positive, negative = clip_phrases(
            clip, np.random.default_rng(index), set(training_phrases())
        )
        assert any(len(f.targets(positive)) for f in clip.frames)
        assert negative is None or not any(len(f.targets(negative)) for f in clip.frames)
    assert changes >= 2 and occluded >= 2
    again = clip_sample(Split.HELD_OUT_SEEDS, 0, config)
    first = clip_sample(Split.HELD_OUT_SEEDS, 0, config)
    assert all(
        np.array_equal(a.image, b.image) for a, b in zip(again.frames, first.frames, strict=True)
    )


def test_non_square_canvas() -> None:
    config = ClipConfig(world=WorldConfig(height=96, width=160), num_frames=3)
    clip = clip_sample(Split.TRAIN, 1, config)
    assert clip.frames[0].image.shape == (96, 160, 3)
    with pytest.raises(ValueError):
        WorldConfig(height=8, width=8)


@pytest.mark.parametrize("texture", list(Texture))
def test_a_texture_window_equals_the_same_pixels_of_the_whole_frame(texture: Texture) -> None:
    """`compose` paints each object through a window around it: same pixels, cheaper."""
    colour = np.array([200.0, 40.0, 90.0], np.float32)
    args = (texture, colour, (37.5, 21.25), 14.0, 0.7)
    whole = render.texture_layer(*args, (64, 80))
    window = render.texture_layer(*args, (20, 30), origin=(25, 9))
    assert np.array_equal(window, whole[9:29, 25:55])
