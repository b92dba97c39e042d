"""The real loop on an `ExactScene`, run to its steady state, with exactly N objects asserted.

`run_steady` steps one or several `VideoTracker`s (several: `VideoTracker.step_many`, one shared
backbone batch) over the scene until every object's memory bank holds as many memories as its
caps allow (`VideoTracker.memory_stats`: `max_cond_frames` conditioning memories, and the ring
of recent ones, max(pointers - 1, num_maskmem - 1), full), then records `steady_frames` frames.
From then on the tracker attends to the largest memory it ever will (S spatial memories,
P pointers), so every recorded frame has the same shapes.

Re-conditioning frames (every `recondition_every_nth_frame`-th: all N objects re-prompted,
older recent memories dropped, so the banks refill over the next frames) are not recorded; the
bench reports the first one it passes apart (`SteadyRun.recondition_ms`).

Every frame, warm-up included, must show exactly N live objects: N started on frame 0, then
the same N IDs, N published, nothing started or ended. Anything else raises `NotExact`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from bench.counting import FrameCounts, OpCounter
from bench.scene import ExactScene
from model.types import Concept, FrameTrack
from model.video.video_tracker import VideoTracker


class NotExact(AssertionError):
    """The loop did not hold exactly the scene's N objects."""


@dataclass(frozen=True)
class SteadyFrame:
    index: int
    ms: float  # the whole step (all streams), the device synchronised before and after
    stages_ms: Mapping[str, float]  # the loop's own per-stage timings (first stream)
    memory: tuple[int, int, int]  # (objects, spatial memories, pointers) propagated
    counts: FrameCounts | None  # with a counter: per-stage counts (the step's time is then off)


@dataclass(frozen=True)
class SteadyRun:
    n: int
    streams: int
    warmup_frames: int  # frames before the first recorded one
    caps: tuple[int, int]  # (conditioning, recent) memories per object
    frames: tuple[SteadyFrame, ...]
    recondition_ms: float | None  # a re-conditioning frame passed after the banks were full

    @property
    def median_ms(self) -> float:
        return float(np.median([f.ms for f in self.frames]))

    def median_stages_ms(self) -> dict[str, float]:
        names = sorted({k for f in self.frames for k in f.stages_ms})
        return {k: float(np.median([f.stages_ms.get(k, 0.0) for f in self.frames])) for k in names}


def random_frames(height: int, width: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def bank_caps(tracker: VideoTracker, scene: ExactScene) -> tuple[int, int]:
    """(conditioning, recent) memories an object's bank holds at most (model/tracker/memory_bank.py)."""
    recent = max(scene.max_object_pointers - 1, scene.num_maskmem - 1)
    return tracker.config.max_cond_frames, recent


def run_steady(
    scene: ExactScene,
    trackers: Sequence[VideoTracker],
    images: Sequence[np.ndarray],
    steady_frames: int,
    *,
    counter: OpCounter | None = None,
    max_frames: int = 400,
    on_frame: Callable[[int, FrameTrack], None] | None = None,
) -> SteadyRun:
    """Step `trackers` (fresh, sharing `scene`) until `steady_frames` steady frames are recorded."""
    if not trackers or any(t.frame_index for t in trackers):
        raise ValueError("run_steady needs fresh trackers")
    for tracker in trackers:
        tracker.add_concept(Concept(text="object"))
    n, device = scene.n, scene.device
    caps = bank_caps(trackers[0], scene)
    every = trackers[0].config.recondition_every_nth_frame
    ids: list[tuple[int, ...]] = []
    recorded: list[SteadyFrame] = []
    recondition_ms: float | None = None
    warmup = None
    with torch.inference_mode():
        for t in range(max_frames):
            if len(recorded) == steady_frames:
                break
            full = t > 0 and all(
                all(sizes == caps for sizes in tr.memory_stats().values()) for tr in trackers
            )
            recondition = every > 0 and t % every == 0
            record = full and not recondition
            scope = counter.frame() if counter is not None and record else nullcontext(None)
            frame = [images[(t + k) % len(images)] for k in range(len(trackers))]
            _synchronize(device)
            start = time.perf_counter()
            with scope as counts:
                results = VideoTracker.step_many(trackers, frame, [t] * len(trackers))
            _synchronize(device)
            ms = (time.perf_counter() - start) * 1e3
            for k, (tracker, result) in enumerate(zip(trackers, results, strict=True)):
                if t == 0:
                    ids.append(tracker.object_ids)
                _check_exact(n, t, result, tracker, ids[k], k)
                if on_frame is not None:
                    on_frame(t, result)
            if full and recondition and recondition_ms is None:
                recondition_ms = ms
            if record:
                warmup = t if warmup is None else warmup
                shape = scene.memory_shapes[-1]
                recorded.append(SteadyFrame(t, ms, dict(results[0].timings_ms), shape, counts))
        else:
            raise NotExact(
                f"the memory banks never reached their caps {caps} (conditioning, recent) in "
                f"{max_frames} frames: {trackers[0].memory_stats()}"
            )
    assert warmup is not None
    return SteadyRun(n, len(trackers), warmup, caps, tuple(recorded), recondition_ms)


def _check_exact(
    n: int, t: int, result: FrameTrack, tracker: VideoTracker, ids: tuple[int, ...], stream: int
) -> None:
    live = tracker.object_ids
    where = f"stream {stream}, frame {t}"
    if t == 0:
        if len(result.started) != n or len(live) != n:
            raise NotExact(f"{where}: {len(result.started)} objects started, the scene has {n}")
        return
    if live != ids:
        raise NotExact(f"{where}: live objects {live}, expected the {n} of frame 0 {ids}")
    if result.started or result.ended:
        raise NotExact(
            f"{where}: objects started {[e.object_id for e in result.started]}, "
            f"ended {[e.object_id for e in result.ended]}; the scene's objects never change"
        )
    if len(result.objects) != n:
        raise NotExact(f"{where}: {len(result.objects)} objects published, expected {n}")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
