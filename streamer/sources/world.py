"""A live source of the concept world the embedded model was trained on (model/embedded/world).

`world://384@15` streams square frames of held-out world clips, one after another, paced like a
camera: coloured, textured shapes that move, turn, enter, leave and hide behind each other over a
cluttered background. It is the demo's default scene because the embedded model knows these
concepts ("red circle", "striped star", ...); the real SAM 3 weights work on it too.

Clips are rendered whole (the generator is per clip); the next one is rendered in a helper
thread while the current one plays, so the stream does not pause between clips.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from streamer.sources.handoff import HandoffPolicy
from streamer.sources.threaded import Producer, ThreadedSource
from streamer.types import SourceInfo, SourceState

if TYPE_CHECKING:
    from model.embedded.world import Clip


@dataclass(frozen=True, slots=True)
class WorldSourceConfig:
    size: int = 384  # square frames: the embedded model sees 128 x 128 without distortion
    fps: float = 15.0
    clip_seconds: float = 8.0  # rendered whole: ~2 s for the first clip at 384 px
    # clip k is held-out clip `seed + k`; clip 4 shows rings, squares and crosses from its
    # first frame, and more enter later (the demo's default concepts)
    seed: int = 4
    frames: int | None = None  # stop after this many frames; None = forever

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 2048:
            raise ValueError(f"world frames must be 32..2048 px square, got {self.size}")
        if self.fps <= 0 or self.clip_seconds <= 0:
            raise ValueError(
                f"fps and clip_seconds must be > 0, got {self.fps}, {self.clip_seconds}"
            )

    @property
    def clip_frames(self) -> int:
        return max(1, round(self.fps * self.clip_seconds))


def render_clip(config: WorldSourceConfig, k: int) -> Clip:
    # the world generator belongs to the embedded model's training application (model/embedded):
    # loaded when a world:// stream renders its first clip, never by importing the sources
    from model.embedded.world import ClipConfig, Split, WorldConfig, clip_sample

    world = WorldConfig(height=config.size, width=config.size)
    clip_config = ClipConfig(world=world, num_frames=config.clip_frames)
    return clip_sample(Split.HELD_OUT_SEEDS, config.seed + k, clip_config)


def world_concepts() -> tuple[str, ...]:
    """The phrases the embedded model was trained to find in this world, shortest first: each
    shape, then each colour with each shape (less the pairs held out of training)."""
    from model.embedded.world.concepts import Colour, Phrase, Shape, is_held_out

    phrases = [Phrase(shape=s) for s in Shape]
    phrases += [Phrase(shape=s, colour=c) for c in Colour for s in Shape]
    return tuple(p.text for p in phrases if not is_held_out(p))


class WorldSource(ThreadedSource):
    """Concept-world clips paced at `fps` in a thread; live, so the newest frame wins."""

    def __init__(self, config: WorldSourceConfig | None = None, *, stream_id: str = "0") -> None:
        super().__init__(stream_id=stream_id, policy=HandoffPolicy.LATEST, capacity=1)
        self.config = config or WorldSourceConfig()

    def _describe(self) -> str:
        return f"world://{self.config.size}@{self.config.fps:g}"

    def _produce(self, out: Producer) -> None:
        cfg = self.config
        time_base = 1 / Fraction(cfg.fps).limit_denominator(1001)  # pts counts frames
        with ThreadPoolExecutor(1, thread_name_prefix=f"world-{self.stream_id}") as pool:
            upcoming: Future[Clip] = pool.submit(render_clip, cfg, 0)
            clip = upcoming.result()
            out.info(
                SourceInfo(self._describe(), cfg.size, cfg.size, cfg.fps, time_base, live=True)
            )
            out.status(SourceState.LIVE)
            start, index, k = time.monotonic(), 0, 0
            while cfg.frames is None or index < cfg.frames:
                position = index % cfg.clip_frames
                if position == 0 and index > 0:
                    k += 1
                    clip = upcoming.result()
                if position == 0:
                    upcoming = pool.submit(render_clip, cfg, k + 1)
                out.sleep(start + index / cfg.fps - time.monotonic())
                out.frame(clip.frames[position].image, index, time_base)
                index += 1
            upcoming.cancel()
