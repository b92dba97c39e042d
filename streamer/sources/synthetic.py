"""A built-in live source: coloured shapes moving over a noisy background (demo, tests, benchmarks).

Cheap at 1080p: the noisy background is rendered once; each frame is one copy of it plus a few small
shape stamps written into their bounding boxes (about 1-2 ms at 1920 x 1080). Frames are a pure
function of (seed, index), so `render(i)` can be called directly by tests and benchmarks, and the
shapes' true boxes are available from `boxes(i)`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from streamer.sources.handoff import HandoffPolicy
from streamer.sources.threaded import Producer, ThreadedSource
from streamer.types import SourceInfo, SourceState

PALETTE = np.array(  # saturated colours that stand out from the grey noise
    [[230, 40, 40], [40, 200, 60], [50, 90, 240], [240, 200, 30], [200, 60, 220], [30, 210, 220]],
    dtype=np.uint8,
)


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    shapes: int = 4
    frames: int | None = None  # stop after this many frames; None = forever
    realtime: bool = True  # pace to fps like a camera; False = as fast as taken
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(
                f"synthetic frames must be at least 16 x 16, got {self.width} x {self.height}"
            )
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not 0 <= self.shapes <= len(PALETTE):
            raise ValueError(f"shapes must be in 0..{len(PALETTE)}, got {self.shapes}")


@dataclass(frozen=True, slots=True)
class _Shape:
    round: bool  # disc (True) or rectangle
    w: int
    h: int
    x0: float  # start position, velocity in px per frame
    y0: float
    vx: float
    vy: float
    colour: np.ndarray  # 3 uint8


class SyntheticScene:
    """Deterministic frames: `render(i)` -> H x W x 3 uint8, `boxes(i)` -> shapes x 4 (x0, y0, x1, y1)."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        rng = np.random.default_rng(config.seed)
        w, h = config.width, config.height
        # Background: vertical grey gradient + uniform noise, rendered once.  H x W x 3
        gradient = np.linspace(60, 140, h, dtype=np.float32)[:, None, None]
        noise = rng.integers(-25, 26, size=(h, w, 3)).astype(np.float32)
        self.background = np.clip(gradient + noise, 0, 255).astype(np.uint8)
        side = max(8, min(w, h) // 6)
        self.shapes = [
            _Shape(
                round=i % 2 == 0,
                w=int(side * rng.uniform(0.6, 1.2)),
                h=int(side * rng.uniform(0.6, 1.2)),
                x0=float(rng.uniform(0, w)),
                y0=float(rng.uniform(0, h)),
                vx=float(rng.uniform(1.0, 4.0) * w / 640 * rng.choice([-1, 1])),
                vy=float(rng.uniform(1.0, 4.0) * h / 480 * rng.choice([-1, 1])),
                colour=PALETTE[i],
            )
            for i in range(config.shapes)
        ]
        self._discs = {(s.w, s.h): _disc(s.w, s.h) for s in self.shapes if s.round}

    def boxes(self, index: int) -> np.ndarray:
        """shapes x 4 int (x0, y0, x1, y1), exclusive ends, inside the frame."""
        out = np.zeros((len(self.shapes), 4), dtype=np.int64)
        for k, s in enumerate(self.shapes):
            x = _bounce(s.x0 + s.vx * index, self.config.width - s.w)
            y = _bounce(s.y0 + s.vy * index, self.config.height - s.h)
            out[k] = (x, y, x + s.w, y + s.h)
        return out

    def render(self, index: int) -> np.ndarray:
        frame: np.ndarray = self.background.copy()
        for s, (x0, y0, x1, y1) in zip(self.shapes, self.boxes(index), strict=True):
            patch = frame[y0:y1, x0:x1]  # h x w x 3 view
            if s.round:
                patch[self._discs[(s.w, s.h)]] = s.colour
            else:
                patch[:] = s.colour
        return frame


class SyntheticSource(ThreadedSource):
    """`SyntheticScene` frames paced at `fps` in a thread; live, so the newest frame wins."""

    def __init__(self, config: SyntheticConfig | None = None, *, stream_id: str = "0") -> None:
        super().__init__(stream_id=stream_id, policy=HandoffPolicy.LATEST, capacity=1)
        self.config = config or SyntheticConfig()
        self.scene = SyntheticScene(self.config)

    def _describe(self) -> str:
        c = self.config
        return f"synthetic://{c.width}x{c.height}@{c.fps:g}"

    def _produce(self, out: Producer) -> None:
        cfg = self.config
        rate = Fraction(cfg.fps).limit_denominator(1001)
        time_base = 1 / rate  # pts counts frames
        out.info(SourceInfo(self._describe(), cfg.width, cfg.height, cfg.fps, time_base, live=True))
        out.status(SourceState.LIVE)
        start = time.monotonic()
        index = 0
        while cfg.frames is None or index < cfg.frames:
            if cfg.realtime:
                out.sleep(start + index / cfg.fps - time.monotonic())
            out.frame(self.scene.render(index), index, time_base)
            index += 1


def _bounce(position: float, span: int) -> int:
    """Reflect a position moving freely on a line into [0, span] (a ball between two walls)."""
    if span <= 0:
        return 0
    period = 2 * span
    p = math.fmod(position, period)
    p = p + period if p < 0 else p
    return int(p if p <= span else period - p)


def _disc(w: int, h: int) -> np.ndarray:
    """h x w bool ellipse filling its box."""
    ys = (np.arange(h) + 0.5 - h / 2) / (h / 2)
    xs = (np.arange(w) + 0.5 - w / 2) / (w / 2)
    inside: np.ndarray = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0
    return inside
