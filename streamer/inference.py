"""The inference worker: one per device, one thread, owns the model and every stream's tracker.

    session ──submit(frame)──► Lane.inbox ─┐                       ┌─► Lane.outbox ──► session
    session ──submit(frame)──► Lane.inbox ─┼─► worker loop ─► thread: step_many(trackers, images)
    session ──submit(frame)──► Lane.inbox ─┘   (one frame per ready lane per batch)

Each stream has a `Lane`. Its inbox is a `Latest` slot for live sources (newest wins; replaced
frames are counted as `superseded`) or a `Bounded(BLOCK)` queue for files (no loss: the file is
read as fast as the model goes). The loop wakes when any lane has a frame, takes at most one frame
from every lane that has one *and* room in its outbox, and runs all of them through the tracker
class's `step_many` in one call on the worker thread: one batched backbone call for several
cameras. A live frame that waited longer than its lane's `latency_budget_s` is skipped (`stale`)
instead of letting lag build.

Every tracker call (steps, prompt edits, gaps, finish) runs on the single worker thread, so a
tracker is never touched by two threads and an edit applies at the next step. A failing step
fails only its own lane: its outbox closes with the error and the session re-raises it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np

from model.types import FrameTrack, ObjectEndedEvent
from streamer.channels import Bounded, Latest, Overflow
from streamer.types import Frame

R = TypeVar("R")


class StreamTracker(Protocol):
    """One stream's tracker as the worker drives it: the part of
    `model.video.video_tracker.VideoTracker` it uses (tests use tests/fakes.py)."""

    def step(self, image: np.ndarray, pts: int | None = None) -> FrameTrack: ...
    def mark_gap(self, seconds: float) -> None: ...
    def finish(self) -> tuple[ObjectEndedEvent, ...]: ...


@dataclass(frozen=True)
class LanePolicy:
    """How one stream's frames reach the model."""

    live: bool | None  # True: latest-wins slot; False: every frame; None: the source decides
    latency_budget_s: float = 0.5  # live frames older than this when picked are skipped
    outbox_size: int = 4  # results waiting for the publish stage; a full outbox pauses the lane


@dataclass(frozen=True)
class Inferred:
    """One processed frame and what the tracker made of it."""

    frame: Frame
    track: FrameTrack
    picked_ns: int  # time.time_ns() when the worker took the frame (queue wait ends)
    done_ns: int  # when the model call returned
    batch_size: int  # frames in the model call that produced this result


@dataclass(frozen=True)
class Finished:
    """Last outcome of a lane: objects still alive when the input ended."""

    ended: tuple[ObjectEndedEvent, ...]


Outcome = Inferred | Finished


class Lane:
    """One stream's seat at the worker: `submit` frames, `end_input`, iterate outcomes."""

    def __init__(self, worker: InferenceWorker, stream_id: str, tracker: Any, policy: LanePolicy):
        self.stream_id = stream_id
        self.tracker = tracker
        self.policy = policy
        self._worker = worker
        self.inbox = _inbox(bool(policy.live))
        self.outbox: Bounded[Outcome] = Bounded(policy.outbox_size, Overflow.BLOCK)
        self.stale = 0  # frames skipped for exceeding the latency budget
        self._gap_s = 0.0  # source gap to report to the tracker before its next step

    def settle(self, source_live: bool) -> bool:
        """Fix live-ness at the first frame when the spec left it to the source; returns it."""
        if self.policy.live is None:
            if len(self.inbox) or self.inbox.closed:
                raise RuntimeError("settle() must come before the first frame")
            self.policy = replace(self.policy, live=source_live)
            self.inbox = _inbox(source_live)
        return bool(self.policy.live)

    @property
    def superseded(self) -> int:
        """Live frames replaced in the slot by a newer one before the model got to them."""
        return self.inbox.dropped

    async def submit(self, frame: Frame) -> None:
        if isinstance(self.inbox, Latest):
            self.inbox.put(frame)
        else:
            await self.inbox.put(frame)
        self._worker.wake()

    def end_input(self) -> None:
        """No more frames: the worker finishes what is queued, then the tracker, then the outbox."""
        self.inbox.close()
        self._worker.wake()

    def mark_gap(self, seconds: float) -> None:
        """The source was silent for `seconds`; applied on the worker thread before the next step."""
        self._gap_s += seconds

    async def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run `fn(*args, **kwargs)` (a tracker edit) on the worker thread, between steps."""
        return await self._worker.call(fn, *args, **kwargs)

    def __aiter__(self) -> AsyncIterator[Outcome]:
        return self._outcomes()

    async def _outcomes(self) -> AsyncIterator[Outcome]:
        async for outcome in self.outbox:
            self._worker.wake()  # room in the outbox may make this lane ready again
            yield outcome

    # --- used by the worker loop only ---------------------------------------------------
    def _ready(self) -> bool:
        return len(self.inbox) > 0 and len(self.outbox) < self.outbox.maxsize

    def _drained(self) -> bool:
        """Input ended and consumed, and the outbox has room for the final `Finished`."""
        return self.inbox.closed and len(self.inbox) == 0 and len(self.outbox) < self.outbox.maxsize

    def _take(self, now_ns: int) -> Frame | None:
        frame = self.inbox.get_nowait()
        if frame is None:
            return None
        if self.policy.live and now_ns - frame.captured_ns > self.policy.latency_budget_s * 1e9:
            self.stale += 1
            return None
        return frame


def _inbox(live: bool) -> Latest[Frame] | Bounded[Frame]:
    return Latest() if live else Bounded(2, Overflow.BLOCK)


class InferenceWorker:
    """Owns one device's model thread and the lanes of every stream on it."""

    def __init__(self, *, device: str = "cpu", max_batch: int = 8) -> None:
        self.device = device
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"inference-{device}")
        self._lanes: dict[str, Lane] = {}
        self._wakeup = asyncio.Event()
        self.batches = collections.Counter[int]()  # batch size -> count (exported as a metric)
        self.model_ms_total = 0.0

    def open_lane(self, stream_id: str, tracker: Any, policy: LanePolicy) -> Lane:
        if stream_id in self._lanes:
            raise ValueError(f"stream {stream_id!r} already has a lane on {self.device}")
        lane = Lane(self, stream_id, tracker, policy)
        self._lanes[stream_id] = lane
        return lane

    def close_lane(self, stream_id: str) -> None:
        """Drop a lane now (abort path): its consumers see the outbox closed."""
        lane = self._lanes.pop(stream_id, None)
        if lane is not None:
            lane.inbox.close()
            lane.outbox.close()

    def wake(self) -> None:
        self._wakeup.set()

    async def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def run(self) -> None:
        """The scheduling loop; runs until cancelled (owned by the engine's TaskGroup)."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                await self._finish_drained()
                batch = self._collect()
                if batch:
                    await self._step(batch)
                    self._wakeup.set()  # lanes may have more waiting; the next pass decides
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _collect(self) -> list[tuple[Lane, Frame, int]]:
        now = time.time_ns()
        batch: list[tuple[Lane, Frame, int]] = []
        for lane in self._lanes.values():
            if len(batch) == self.max_batch:
                break
            if lane._ready():
                frame = lane._take(now)
                if frame is not None:
                    batch.append((lane, frame, now))
        return batch

    async def _step(self, batch: list[tuple[Lane, Frame, int]]) -> None:
        lanes = [lane for lane, _, _ in batch]
        frames = [frame for _, frame, _ in batch]
        gaps = [lane._gap_s for lane in lanes]
        for lane in lanes:
            lane._gap_s = 0.0
        results = await self.call(_step_on_thread, [lane.tracker for lane in lanes], frames, gaps)
        done = time.time_ns()
        self.batches[len(batch)] += 1
        for (lane, frame, picked), result in zip(batch, results, strict=True):
            if lane.outbox.closed:  # lane aborted while its frame was in the model
                continue
            if isinstance(result, BaseException):
                self._lanes.pop(lane.stream_id, None)
                lane.inbox.close()
                lane.outbox.close(result)
                continue
            self.model_ms_total += (done - picked) / 1e6 / len(batch)
            lane.outbox.put_nowait(Inferred(frame, result, picked, done, len(batch)))

    async def _finish_drained(self) -> None:
        for lane in [lane for lane in self._lanes.values() if lane._drained()]:
            del self._lanes[lane.stream_id]
            try:
                ended = await self.call(lane.tracker.finish)
            except Exception as error:  # the tracker failed: its stream fails, others go on
                lane.outbox.close(error)
                continue
            if not lane.outbox.closed:  # a consumer that left may have closed it already
                lane.outbox.put_nowait(Finished(ended))
            lane.outbox.close()


def _step_on_thread(
    trackers: Sequence[Any], frames: Sequence[Frame], gaps: Sequence[float]
) -> list[FrameTrack | Exception]:
    """Worker-thread body: pending gaps, then one batched step; a failing stream fails alone.

    If the batched call raises, each frame is stepped alone so that one bad stream cannot fail
    the others. A tracker that had already advanced inside the failed batch sees its frame twice:
    acceptable on this rare path, and better than failing every stream on the device.
    """
    for tracker, gap in zip(trackers, gaps, strict=True):
        if gap > 0:
            tracker.mark_gap(gap)
    images = [frame.rgb for frame in frames]  # each H x W x 3 uint8
    pts = [frame.pts for frame in frames]
    if len(trackers) > 1:
        try:
            return list(type(trackers[0]).step_many(trackers, images, pts))
        except Exception:
            pass  # fall through to one stream at a time
    return [_step_one(t, image, p) for t, image, p in zip(trackers, images, pts, strict=True)]


def _step_one(tracker: Any, image: np.ndarray, pts: int | None) -> FrameTrack | Exception:
    try:
        return tracker.step(image, pts)  # type: ignore[no-any-return]
    except Exception as error:
        return error
