"""The concept vocabulary of the generated world: attributes, objects and noun phrases.

An object has four attributes (shape, colour, size, texture). A noun phrase always names a shape
and may name any of the other three; it matches every object whose attributes agree with the ones
it names ("star" matches all stars, "small yellow star" only small yellow ones). Phrases read
"{size} {colour} {texture} {shape}", e.g. "small red striped circle".

Held-out combinations: some (colour, shape) pairs are never used as training prompts (objects with
them still appear, so the model sees them, but it never hears the pair named together). Evaluation
on those phrases measures whether the text side composes.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass


class Shape(enum.Enum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    STAR = "star"
    CROSS = "cross"
    RING = "ring"


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"
    YELLOW = "yellow"
    PURPLE = "purple"
    WHITE = "white"


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Texture(enum.Enum):
    PLAIN = "plain"
    STRIPED = "striped"
    DOTTED = "dotted"


# Nominal RGB of each colour; the renderer jitters around it.
COLOUR_RGB: dict[Colour, tuple[int, int, int]] = {
    Colour.RED: (215, 35, 35),
    Colour.GREEN: (40, 175, 60),
    Colour.BLUE: (40, 80, 225),
    Colour.YELLOW: (235, 210, 35),
    Colour.PURPLE: (150, 55, 195),
    Colour.WHITE: (240, 240, 240),
}


@dataclass(frozen=True)
class Attributes:
    """The attributes of one object in the world."""

    shape: Shape
    colour: Colour
    size: Size
    texture: Texture


@dataclass(frozen=True)
class Phrase:
    """A noun phrase: a shape plus optional colour, size and texture (None = not named)."""

    shape: Shape
    colour: Colour | None = None
    size: Size | None = None
    texture: Texture | None = None

    def matches(self, attrs: Attributes) -> bool:
        return (
            self.shape is attrs.shape
            and (self.colour is None or self.colour is attrs.colour)
            and (self.size is None or self.size is attrs.size)
            and (self.texture is None or self.texture is attrs.texture)
        )

    @property
    def text(self) -> str:
        words = [
            self.size.value if self.size else None,
            self.colour.value if self.colour else None,
            self.texture.value if self.texture else None,
            self.shape.value,
        ]
        return " ".join(w for w in words if w)

    @property
    def num_attributes(self) -> int:
        """How many attributes besides the shape the phrase names (0..3)."""
        return sum(a is not None for a in (self.colour, self.size, self.texture))

    @staticmethod
    def parse(text: str) -> Phrase:
        """Inverse of `text`; raises ValueError on words outside the world's vocabulary."""
        words = text.strip().lower().split()
        if not words:
            raise ValueError("empty phrase")
        try:
            shape = Shape(words[-1])
        except ValueError:
            raise ValueError(f"{text!r}: last word must be a shape, one of {SHAPE_WORDS}") from None
        found: dict[type, enum.Enum] = {}
        for word in words[:-1]:
            for kind in (Colour, Size, Texture):
                if word in {m.value for m in kind}:
                    if kind in found:
                        raise ValueError(f"{text!r}: two {kind.__name__.lower()} words")
                    found[kind] = kind(word)
                    break
            else:
                raise ValueError(f"{text!r}: unknown word {word!r}")
        return Phrase(
            shape=shape,
            colour=found.get(Colour),  # type: ignore[arg-type]
            size=found.get(Size),  # type: ignore[arg-type]
            texture=found.get(Texture),  # type: ignore[arg-type]
        )


SHAPE_WORDS = tuple(s.value for s in Shape)

# (colour, shape) pairs never named together in training prompts.
HELD_OUT_PAIRS: frozenset[tuple[Colour, Shape]] = frozenset(
    {
        (Colour.PURPLE, Shape.STAR),
        (Colour.GREEN, Shape.TRIANGLE),
        (Colour.WHITE, Shape.SQUARE),
        (Colour.BLUE, Shape.RING),
        (Colour.YELLOW, Shape.CROSS),
        (Colour.RED, Shape.CIRCLE),
    }
)


def is_held_out(phrase: Phrase) -> bool:
    return phrase.colour is not None and (phrase.colour, phrase.shape) in HELD_OUT_PAIRS


def all_phrases() -> tuple[Phrase, ...]:
    """Every phrase of the world (6 shapes x 7 colour options x 3 sizes x 3 textures = 378).

    "plain" is never named: a phrase without a texture word matches every texture.
    """
    named_textures: tuple[Texture | None, ...] = (None, Texture.STRIPED, Texture.DOTTED)
    return tuple(
        Phrase(shape=shape, colour=colour, size=size, texture=texture)
        for shape, colour, size, texture in itertools.product(
            Shape, (None, *Colour), (None, *Size), named_textures
        )
    )


def training_phrases() -> tuple[Phrase, ...]:
    return tuple(p for p in all_phrases() if not is_held_out(p))


def held_out_phrases() -> tuple[Phrase, ...]:
    return tuple(p for p in all_phrases() if is_held_out(p))


def vocabulary_words() -> tuple[str, ...]:
    """Every word a phrase can contain (the tokenizer's training text)."""
    return tuple(m.value for kind in (Shape, Colour, Size, Texture) for m in kind)
