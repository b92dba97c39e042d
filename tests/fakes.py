"""Fakes (not mocks) for pipeline tests: a scripted tracker and a scripted source.

`FakeTracker` keeps the real `VideoTracker` API (model/video/video_tracker.py) but "detects" a concept by colour:
a concept whose text is one of `COLOURS` finds the pixels of exactly that colour, so a test scene
decides what is detected, and a mask always belongs to the very frame it was computed on. Object
IDs increase and are never reused; an object is LOST after `gap_frames` frames without pixels.
`stall` (a threading.Event, set = run) lets a test freeze the model on purpose.

`FakeSource` keeps the Source contract (streamer/sources/base.py): frames of a moving coloured
square, paced or not, with scripted disconnects (reported through on_gap/on_status) and failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from fractions import Fraction

import numpy as np
from aiohttp.test_utils import TestClient, TestServer, get_port_socket

from model.types import (
    BoxPrompt,
    Concept,
    EndReason,
    FrameTrack,
    ObjectEndedEvent,
    ObjectStartedEvent,
    ObjectState,
    PointPrompt,
    TrackedObject,
)
from streamer.api import ApiConfig, create_app
from streamer.engine import Engine
from streamer.outputs import OutputStats
from streamer.sources.base import SourceError
from streamer.types import Frame, SourceInfo

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "white": (255, 255, 255),
}
TOLERANCE = (
    60  # per channel: survives H.264 on real streams, still far from the grey 128 background
)


class FakeTracker:
    """Scripted stand-in for model.video.VideoTracker (same public methods)."""

    batch_sizes: list[int] = []  # class-level record of step_many batch sizes (tests reset it)

    def __init__(
        self,
        model: object = None,
        config: object = None,
        *,
        delay_s: float = 0.0,
        stall: threading.Event | None = None,
        gap_frames: int = 3,
        fail_on_frame: int | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.stall = stall
        self.gap_frames = gap_frames
        self.fail_on_frame = fail_on_frame
        self.concepts: dict[int, Concept] = {}
        self.manual: dict[int, BoxPrompt] = {}  # object_id -> box for click/box objects
        self._next_concept = 0
        self._next_object = 1
        self._live: dict[
            int, tuple[int | None, int]
        ] = {}  # object_id -> (concept_id, frames unseen)
        self._by_concept: dict[int, int] = {}  # concept_id -> live object_id
        self._pending_end: list[ObjectEndedEvent] = []
        self.frame_index = 0
        self.gaps: list[float] = []
        self.steps_thread: set[int] = set()  # thread idents that ran step (the worker owns one)

    # --- prompts ------------------------------------------------------------------------
    def add_concept(self, concept: Concept) -> int:
        if concept.text is not None and concept.text not in COLOURS and not concept.exemplars:
            raise ValueError(
                f"FakeTracker only knows colours {sorted(COLOURS)}, got {concept.text!r}"
            )
        concept_id = self._next_concept
        self._next_concept += 1
        self.concepts[concept_id] = concept
        return concept_id

    def remove_concept(self, concept_id: int) -> None:
        if concept_id not in self.concepts:
            raise KeyError(f"no concept {concept_id}")
        del self.concepts[concept_id]
        object_id = self._by_concept.pop(concept_id, None)
        if object_id is not None:
            self._end(object_id, EndReason.REMOVED)

    def add_object(
        self, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> int:
        if box is None:
            raise ValueError("FakeTracker needs a box")
        object_id = self._next_object
        self._next_object += 1
        self.manual[object_id] = box
        return object_id

    def refine_object(
        self, object_id: int, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> None:
        if object_id not in self._live and object_id not in self.manual:
            raise KeyError(f"no object {object_id}")
        if box is not None:
            self.manual[object_id] = box

    def remove_object(self, object_id: int) -> None:
        if object_id in self.manual:
            del self.manual[object_id]
            if object_id in self._live:
                self._end(object_id, EndReason.REMOVED)
            return
        if object_id not in self._live:
            raise KeyError(f"no object {object_id}")
        concept_id, _ = self._live[object_id]
        if concept_id is not None:
            self._by_concept.pop(concept_id, None)
        self._end(object_id, EndReason.REMOVED)

    def mark_gap(self, seconds: float) -> None:
        self.gaps.append(seconds)

    # --- per frame ----------------------------------------------------------------------
    def step(self, image: np.ndarray, pts: int | None = None) -> FrameTrack:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, image.shape
        self.steps_thread.add(threading.get_ident())
        if self.stall is not None:
            self.stall.wait()
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_on_frame is not None and self.frame_index == self.fail_on_frame:
            raise RuntimeError(f"scripted tracker failure on frame {self.frame_index}")
        height, width = image.shape[:2]
        objects: list[TrackedObject] = []
        started: list[ObjectStartedEvent] = []
        for concept_id, concept in self.concepts.items():
            mask = _colour_mask(image, concept.text)
            object_id = self._by_concept.get(concept_id)
            if not mask.any():
                if object_id is not None:
                    self._age(object_id)
                continue
            if object_id is None:
                object_id = self._start(concept_id, started)
                self._by_concept[concept_id] = object_id
            self._live[object_id] = (concept_id, 0)
            objects.append(_tracked(object_id, concept_id, mask))
        for object_id, box in self.manual.items():
            mask = np.zeros((height, width), dtype=bool)
            x0, y0, x1, y1 = (int(v) for v in box.xyxy)
            mask[max(y0, 0) : y1, max(x0, 0) : x1] = True
            if object_id not in self._live:
                self._live[object_id] = (None, 0)
                started.append(ObjectStartedEvent(object_id, None))
            objects.append(_tracked(object_id, None, mask))
        ended = tuple(self._pending_end)
        self._pending_end.clear()
        track = FrameTrack(
            frame_index=self.frame_index,
            pts=pts,
            width=width,
            height=height,
            objects=tuple(objects),
            started=tuple(started),
            ended=ended,
            timings_ms={"model": self.delay_s * 1e3},
        )
        self.frame_index += 1
        return track

    def finish(self) -> tuple[ObjectEndedEvent, ...]:
        ended = [*self._pending_end]
        ended += [ObjectEndedEvent(i, EndReason.STREAM_ENDED) for i in sorted(self._live)]
        self._pending_end.clear()
        self._live.clear()
        self._by_concept.clear()
        return tuple(ended)

    @staticmethod
    def step_many(
        trackers: Sequence[FakeTracker], images: Sequence[np.ndarray], pts: Sequence[int | None]
    ) -> list[FrameTrack]:
        FakeTracker.batch_sizes.append(len(trackers))
        return [t.step(i, p) for t, i, p in zip(trackers, images, pts, strict=True)]

    # --- lifecycle helpers --------------------------------------------------------------
    def _start(self, concept_id: int | None, started: list[ObjectStartedEvent]) -> int:
        object_id = self._next_object
        self._next_object += 1
        started.append(ObjectStartedEvent(object_id, concept_id))
        return object_id

    def _age(self, object_id: int) -> None:
        concept_id, unseen = self._live[object_id]
        if unseen + 1 > self.gap_frames:
            if concept_id is not None:
                self._by_concept.pop(concept_id, None)
            self._end(object_id, EndReason.LOST)
        else:
            self._live[object_id] = (concept_id, unseen + 1)

    def _end(self, object_id: int, reason: EndReason) -> None:
        self._live.pop(object_id, None)
        self._pending_end.append(ObjectEndedEvent(object_id, reason))


def _colour_mask(image: np.ndarray, text: str | None) -> np.ndarray:
    if text not in COLOURS:
        return np.zeros(image.shape[:2], dtype=bool)
    distance = np.abs(image.astype(np.int16) - np.array(COLOURS[text], dtype=np.int16))
    return np.all(distance <= TOLERANCE, axis=-1)  # H x W


def _tracked(object_id: int, concept_id: int | None, mask: np.ndarray) -> TrackedObject:
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return TrackedObject(object_id, concept_id, 0.9, box, mask, ObjectState.CONFIRMED)


def scene(seq: int, *, width: int = 64, height: int = 48, colour: str = "red") -> np.ndarray:
    """H x W x 3 uint8 grey frame with a 12x12 square of `colour` moving one pixel per frame."""
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    x = seq % (width - 12)
    image[10:22, x : x + 12] = COLOURS[colour]
    return image


class FakeSource:
    """Scripted source: `frames` frames from `draw(seq)`, paced at `fps` when `paced`.

    `disconnect_at` maps seq -> seconds of silence before that frame, reported like a live reconnect
    (on_status "reconnecting" then "live", on_gap(seconds)). `fail_at` raises SourceError there.
    """

    def __init__(
        self,
        stream_id: str = "cam",
        *,
        frames: int = 10,
        fps: float = 30.0,
        paced: bool = False,
        live: bool = False,
        width: int = 64,
        height: int = 48,
        draw: Callable[[int], np.ndarray] | None = None,
        disconnect_at: dict[int, float] | None = None,
        fail_at: int | None = None,
        fail_message: str = "cannot open rtsp://camera.invalid/stream: connection refused",
    ) -> None:
        self.stream_id = stream_id
        self.frames = frames
        self.fps = fps
        self.paced = paced
        self.disconnect_at = disconnect_at or {}
        self.fail_at = fail_at
        self.fail_message = fail_message
        self._draw = draw or (lambda seq: scene(seq, width=width, height=height))
        self.info: SourceInfo | None = SourceInfo(
            url=f"fake://{stream_id}", width=width, height=height, fps=fps,
            time_base=Fraction(1, 90000), live=live,
        )  # fmt: skip
        self.on_gap: Callable[[float], None] | None = None
        self.on_status: Callable[[str], None] | None = None
        self.closed = False

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        self._status("live")
        step = 1.0 / self.fps
        for seq in range(self.frames):
            if self.closed:
                return
            if seq == self.fail_at:
                self._status("failed")
                raise SourceError(self.fail_message)
            if seq in self.disconnect_at:
                self._status("reconnecting")
                await asyncio.sleep(self.disconnect_at[seq])
                self._status("live")
                if self.on_gap is not None:
                    self.on_gap(self.disconnect_at[seq])
            if self.paced:
                await asyncio.sleep(step)
            else:
                await asyncio.sleep(0)
            pts = round(seq * step * 90000)
            yield Frame(
                self.stream_id, seq, pts, Fraction(1, 90000), time.time_ns(), self._draw(seq)
            )
        self._status("ended")

    def _status(self, state: str) -> None:
        if self.on_status is not None:
            self.on_status(state)

    async def aclose(self) -> None:
        self.closed = True


class FakeSources:
    """A source factory for `Engine(source_factory=...)`: spec.source names a prepared FakeSource."""

    def __init__(self, **sources: FakeSource) -> None:
        self.sources = sources

    def __call__(self, spec: object, stream_id: str) -> FakeSource:
        name = spec.source  # type: ignore[attr-defined]
        if name not in self.sources:
            raise SourceError(f"cannot open {name}: no such fake source")
        source = self.sources[name]
        source.stream_id = stream_id
        return source


class CollectingWriter:
    """A VideoOutput (streamer/outputs) that keeps what it was sent: tests inspect the pixels."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, np.ndarray]] = []  # (seq, H x W x 3 image)
        self.closed = False

    async def send(self, frame: Frame) -> None:
        self.frames.append((frame.seq, frame.rgb.copy()))

    async def aclose(self) -> None:
        self.closed = True

    @property
    def stats(self) -> OutputStats:
        return OutputStats(len(self.frames), 0, 0)


async def eventually(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll `condition` every 10 ms; fail the test if it is not true within `within_s`."""
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {within_s} s")


@contextlib.asynccontextmanager
async def running_api(
    engine: Engine, config: ApiConfig | None = None, *, send_buffer: int | None = None
) -> AsyncIterator[tuple[Engine, TestClient]]:
    """The real control API on a real localhost port, with an aiohttp client pointed at it.

    `send_buffer` shrinks the server sockets' kernel send buffers (accepted sockets inherit it from
    the listening one), so a client that stops reading pushes back within ~100 KB, not ~4 MB.
    """

    def listening_socket(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
        sock = get_port_socket(host, port, family)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        return sock

    async with engine:
        app = create_app(engine, config or ApiConfig())
        server = TestServer(app, host="127.0.0.1", port=0, socket_factory=listening_socket)
        async with TestClient(server) as client:
            yield engine, client
