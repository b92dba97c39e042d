"""Scenes of the concept world: objects placed on a background, composited with occlusion.

A `Scene` is one rendered frame with its ground truth: every visible object's persistent id,
attributes, visible (modal) mask and box. Objects are drawn in list order, so later objects
occlude earlier ones; an object whose visible area falls below `min_visible_px` is not in the
ground truth of that frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.embedded.world import render
from model.embedded.world.concepts import Attributes, Colour, Phrase, Shape, Size, Texture


@dataclass(frozen=True)
class WorldConfig:
    """Size of the canvas and the statistics of what is drawn on it."""

    height: int = 128
    width: int = 128
    small_radius: tuple[float, float] = (0.040, 0.060)  # fraction of min(H, W)
    large_radius: tuple[float, float] = (0.085, 0.130)
    noise_sigma: tuple[float, float] = (2.0, 8.0)
    min_visible_px: int = 10  # at 128x128; scaled with the canvas area
    min_visible_fraction: float = 0.2  # less of an object visible than this: not in the truth

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise ValueError(f"canvas {self.height}x{self.width} is too small (min 32x32)")

    @property
    def hw(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def min_area(self) -> int:
        return max(4, round(self.min_visible_px * self.height * self.width / 128**2))


@dataclass(frozen=True)
class WorldObject:
    """One object's pose at one instant: centre (x, y) in pixels, circumradius, rotation (rad)."""

    object_id: int
    attrs: Attributes
    center: tuple[float, float]
    radius: float
    angle: float
    colour_jitter: tuple[float, float, float, float]  # standard-normal draws, fixed per object


@dataclass(frozen=True)
class Scene:
    """One rendered frame and the ground truth of its N visible objects.

    image (H, W, 3) uint8 RGB; ids (N,) int64; masks (N, H, W) bool; boxes (N, 4) float32 xyxy
    in pixels (inclusive-exclusive, i.e. x1 = max x + 1).
    """

    image: np.ndarray
    ids: np.ndarray
    attributes: tuple[Attributes, ...]
    masks: np.ndarray
    boxes: np.ndarray

    def targets(self, phrase: Phrase) -> np.ndarray:
        """Indices (K,) of the visible objects the phrase refers to."""
        return np.array(
            [i for i, a in enumerate(self.attributes) if phrase.matches(a)], dtype=np.int64
        )


def random_attributes(rng: np.random.Generator) -> Attributes:
    return Attributes(
        shape=list(Shape)[rng.integers(len(Shape))],
        colour=list(Colour)[rng.integers(len(Colour))],
        size=list(Size)[rng.integers(len(Size))],
        texture=list(Texture)[rng.integers(len(Texture))],
    )


def random_radius(rng: np.random.Generator, size: Size, config: WorldConfig) -> float:
    lo, hi = config.small_radius if size is Size.SMALL else config.large_radius
    return float(rng.uniform(lo, hi)) * min(config.hw)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, 4) float32 xyxy; x2/y2 exclusive. Empty masks give zeros."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        if len(xs):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def compose(
    base: np.ndarray,
    objects: list[WorldObject],
    rng: np.random.Generator,
    config: WorldConfig,
) -> Scene:
    """Draw objects (in order, later on top) over a float background and finish the frame."""
    hw = config.hw
    img = base.copy()
    full = np.zeros((len(objects), *hw), bool)  # each object's own (amodal) mask
    for i, obj in enumerate(objects):
        mask = render.shape_mask(obj.attrs.shape, obj.center, obj.radius, obj.angle, hw)
        full[i] = mask
        if not mask.any():
            continue
        colour = render.object_colour(obj.attrs, np.asarray(obj.colour_jitter))
        (y0, y1), (x0, x1) = (np.flatnonzero(mask.any(axis=a))[[0, -1]] for a in (1, 0))
        window = mask[y0 : y1 + 1, x0 : x1 + 1]
        layer = render.texture_layer(
            obj.attrs.texture, colour, obj.center, obj.radius, obj.angle, window.shape, (x0, y0)
        )
        img[y0 : y1 + 1, x0 : x1 + 1][window] = layer[window]
    # visible mask = own mask minus everything drawn above it
    visible = full.copy()
    covered = np.zeros(hw, bool)
    for i in range(len(objects) - 1, -1, -1):
        visible[i] &= ~covered
        covered |= full[i]
    visible_px, full_px = visible.sum(axis=(1, 2)), full.sum(axis=(1, 2))
    keep = [
        i
        for i in range(len(objects))
        if visible_px[i] >= config.min_area
        and visible_px[i] >= config.min_visible_fraction * full_px[i]
    ]
    masks = visible[keep]
    sigma = float(rng.uniform(*config.noise_sigma))
    return Scene(
        image=render.finish(img, rng, sigma),
        ids=np.array([objects[i].object_id for i in keep], dtype=np.int64),
        attributes=tuple(objects[i].attrs for i in keep),
        masks=masks,
        boxes=masks_to_boxes(masks),
    )


def visible_fractions(objects: list[WorldObject], hw: tuple[int, int]) -> np.ndarray:
    """(N,) share of each object's own mask left visible by the objects drawn after it."""
    full = [render.shape_mask(o.attrs.shape, o.center, o.radius, o.angle, hw) for o in objects]
    covered = np.zeros(hw, bool)
    out = np.zeros(len(objects))
    for i in range(len(objects) - 1, -1, -1):
        out[i] = (full[i] & ~covered).sum() / max(int(full[i].sum()), 1)
        covered |= full[i]
    return out


def place(
    rng: np.random.Generator, object_id: int, attrs: Attributes, config: WorldConfig
) -> WorldObject:
    """A new object at a uniformly random position that keeps most of it on the canvas."""
    radius = random_radius(rng, attrs.size, config)
    margin = radius * 0.5
    h, w = config.hw
    center = (float(rng.uniform(margin, w - margin)), float(rng.uniform(margin, h - margin)))
    jitter = rng.standard_normal(4)
    return WorldObject(
        object_id=object_id,
        attrs=attrs,
        center=center,
        radius=radius,
        angle=float(rng.uniform(0, 2 * math.pi)),
        colour_jitter=(float(jitter[0]), float(jitter[1]), float(jitter[2]), float(jitter[3])),
    )
