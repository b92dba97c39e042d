"""Video clips of the concept world: moving objects with persistent ids, entering, leaving, occluding.

Each object has a motion: it either wanders inside the canvas (bouncing off the borders), passes
through (enters from one edge, leaves by another) or stays put. Speeds differ per object. One
large "occluder" crosses over the others in most clips, so objects disappear behind it and come
back. The background is fixed per clip; sensor noise is fresh every frame.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from model.embedded.world import render
from model.embedded.world.concepts import Attributes, Phrase, Shape, Size
from model.embedded.world.scene import (
    Scene,
    WorldConfig,
    WorldObject,
    compose,
    place,
    random_attributes,
)


@dataclass(frozen=True)
class ClipConfig:
    """How clips are drawn; speeds are in fractions of min(H, W) per frame."""

    world: WorldConfig = WorldConfig()
    num_frames: int = 32
    num_objects: tuple[int, int] = (3, 6)  # inclusive range, not counting the occluder
    speed: tuple[float, float] = (0.002, 0.03)
    static_rate: float = 0.15
    passer_rate: float = 0.3  # objects that enter from outside and leave
    occluder_rate: float = 0.7  # clips with a large object crossing over the others
    max_spin: float = 0.05  # radians per frame
    # every object but the occluder gets this shape (load tests: "five circles")
    shape: Shape | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")


@dataclass(frozen=True)
class Clip:
    """T frames with ground truth; an object keeps its id in every frame it is visible in."""

    frames: tuple[Scene, ...]

    def ids(self) -> np.ndarray:
        """All object ids that are visible in at least one frame, sorted."""
        all_ids = [f.ids for f in self.frames]
        return np.unique(np.concatenate(all_ids)) if all_ids else np.zeros(0, np.int64)


@dataclass
class _Mover:
    obj: WorldObject
    velocity: tuple[float, float]
    spin: float
    bounce: bool

    def advance(self, hw: tuple[int, int]) -> None:
        (x, y), (vx, vy) = self.obj.center, self.velocity
        x, y = x + vx, y + vy
        if self.bounce:
            r, (h, w) = self.obj.radius, hw
            if not r <= x <= w - r:
                vx, x = -vx, min(max(x, r), w - r)
            if not r <= y <= h - r:
                vy, y = -vy, min(max(y, r), h - r)
        self.velocity = (vx, vy)
        self.obj = dataclasses.replace(self.obj, center=(x, y), angle=self.obj.angle + self.spin)


def _entry(
    rng: np.random.Generator, radius: float, speed: float, hw: tuple[int, int]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start just outside a random edge, heading across the canvas; returns (center, velocity)."""
    h, w = hw
    edge = int(rng.integers(4))
    along = float(rng.uniform(0.2, 0.8))
    start = [
        (along * w, -radius),
        (w + radius, along * h),
        (along * w, h + radius),
        (-radius, along * h),
    ][edge]
    target = (float(rng.uniform(0.3, 0.7)) * w, float(rng.uniform(0.3, 0.7)) * h)
    dx, dy = target[0] - start[0], target[1] - start[1]
    norm = math.hypot(dx, dy)
    # start a random number of frames before entering, so entries are spread over the clip
    delay = float(rng.uniform(0, 0.6)) * norm
    start = (start[0] - dx / norm * delay, start[1] - dy / norm * delay)
    return start, (dx / norm * speed, dy / norm * speed)


def sample_clip(rng: np.random.Generator, config: ClipConfig) -> Clip:
    """Draw one clip; deterministic in the generator's state."""
    world, hw = config.world, config.world.hw
    scale = min(hw)
    movers: list[_Mover] = []
    n = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    for i in range(n):
        attrs = random_attributes(rng)
        if config.shape is not None:
            attrs = dataclasses.replace(attrs, shape=config.shape)
        obj = place(rng, i, attrs, world)
        speed = float(rng.uniform(*config.speed)) * scale
        spin = float(rng.uniform(-config.max_spin, config.max_spin))
        kind = rng.random()
        if kind < config.static_rate:
            movers.append(_Mover(obj, (0.0, 0.0), 0.0, bounce=True))
        elif kind < config.static_rate + config.passer_rate:
            center, velocity = _entry(rng, obj.radius, max(speed, 0.01 * scale), hw)
            movers.append(
                _Mover(dataclasses.replace(obj, center=center), velocity, spin, bounce=False)
            )
        else:
            theta = float(rng.uniform(0, 2 * math.pi))
            velocity = (speed * math.cos(theta), speed * math.sin(theta))
            movers.append(_Mover(obj, velocity, spin, bounce=True))
    if rng.random() < config.occluder_rate:
        attrs = dataclasses.replace(random_attributes(rng), size=Size.LARGE)
        obj = place(rng, n, attrs, world)
        # crossing the whole canvas in about the clip length
        speed = max(1.4 * (scale + 2 * obj.radius) / config.num_frames, 0.01 * scale)
        center, velocity = _entry(rng, obj.radius, speed, hw)
        movers.append(_Mover(dataclasses.replace(obj, center=center), velocity, 0.0, bounce=False))

    base = render.background(rng, hw)
    frames = []
    for _ in range(config.num_frames):
        frames.append(compose(base, [m.obj for m in movers], rng, world))
        for m in movers:
            m.advance(hw)
    return Clip(frames=tuple(frames))


def clip_phrases(
    clip: Clip, rng: np.random.Generator, allowed: set[Phrase]
) -> tuple[Phrase, Phrase | None]:
    """A phrase naming an object of the clip (the first frame's if possible) and one naming none.

    The negative is None when every allowed phrase matches something in the clip.
    """
    seen: dict[int, Attributes] = {}
    for f in clip.frames:
        for i, a in zip(f.ids.tolist(), f.attributes, strict=True):
            seen.setdefault(i, a)
    if not seen:
        raise ValueError("clip has no visible object")
    present = list(seen.values())
    options = sorted(allowed, key=lambda p: p.text)
    positives = [p for p in options if any(p.matches(a) for a in present)]
    negatives = [p for p in options if not any(p.matches(a) for a in present)]
    positive = positives[int(rng.integers(len(positives)))]
    negative = negatives[int(rng.integers(len(negatives)))] if negatives else None
    return positive, negative
