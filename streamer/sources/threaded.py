"""`ThreadedSource`: the async side shared by every source whose frames come from a worker thread.

A subclass writes one blocking method, `_produce(out)`, that runs in a daemon thread and talks to the
loop only through `out` (a `Producer`): `out.frame(...)`, `out.status(...)`, `out.gap(...)`,
`out.info(...)`, `out.note(...)` and the interruptible `out.sleep(...)`. Everything the thread reports
reaches the loop in order through one bounded `Handoff`; the callbacks `on_status` / `on_gap` /
`on_note` run on the loop inside `__anext__`, so a gap is always reported before the first frame
after it. A note is one credential-free line for a person ("connecting to rtsp://cam/1",
"rtsp://cam/1: Connection refused; retrying in 0.5 s"); `failed` marks a failed attempt.

`aclose()` never waits on FFmpeg: it closes the hand-off (a producer blocked on it wakes up), gives the
thread `join_timeout_s` to notice, then returns; a thread stuck in a read ends by itself when its read
timeout fires and its next `put` raises `HandoffClosed`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from streamer.sources.base import SourceError, SourceStats
from streamer.sources.handoff import Handoff, HandoffClosed, HandoffPolicy
from streamer.types import Frame, SourceInfo, SourceState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Status:
    state: SourceState


@dataclass(frozen=True, slots=True)
class _Gap:
    seconds: float


@dataclass(frozen=True, slots=True)
class _Info:
    info: SourceInfo


@dataclass(frozen=True, slots=True)
class SourceNote:
    """What a source is doing, for a person: one credential-free line; `failed` for a failed
    connection attempt (the session publishes those as `Error` events)."""

    message: str
    failed: bool = False


_Notice = _Status | _Gap | _Info | SourceNote


class Producer:
    """The decoder thread's handle: everything it may do to reach the loop."""

    def __init__(self, stream_id: str, handoff: Handoff[_Notice]) -> None:
        self._stream_id = stream_id
        self._handoff = handoff
        self._seq = 0
        self.reconnects = 0
        self.decode_errors = 0

    @property
    def frames_decoded(self) -> int:
        return self._seq

    def frame(self, rgb: np.ndarray, pts: int | None, time_base: Fraction) -> None:
        """Hand one H x W x 3 uint8 frame to the loop; raises HandoffClosed once the consumer left."""
        frame = Frame(self._stream_id, self._seq, pts, time_base, time.time_ns(), rgb)
        self._handoff.put_frame(frame)
        self._seq += 1

    def status(self, state: SourceState) -> None:
        self._handoff.put_notice(_Status(state))

    def gap(self, seconds: float) -> None:
        self._handoff.put_notice(_Gap(seconds))

    def info(self, info: SourceInfo) -> None:
        self._handoff.put_notice(_Info(info))

    def note(self, message: str, *, failed: bool = False) -> None:
        self._handoff.put_notice(SourceNote(message, failed))

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise HandoffClosed as soon as the consumer closes."""
        self._handoff.sleep(seconds)


class ThreadedSource(ABC):
    """Base for sources decoded in a thread; subclasses implement `_produce` and `_describe`."""

    def __init__(
        self,
        *,
        stream_id: str,
        policy: HandoffPolicy,
        capacity: int,
        join_timeout_s: float = 0.5,
    ) -> None:
        self.stream_id = stream_id
        self.info: SourceInfo | None = None
        self.on_gap: Callable[[float], None] | None = None
        self.on_status: Callable[[SourceState], None] | None = None
        self.on_note: Callable[[SourceNote], None] | None = None
        self._handoff: Handoff[_Notice] = Handoff(capacity, policy)
        self._producer = Producer(stream_id, self._handoff)
        self._thread: threading.Thread | None = None
        self._exited: asyncio.Future[None] | None = None  # resolved by the thread as it exits
        self._join_timeout_s = join_timeout_s
        self._closed = False

    # -- the Source contract ------------------------------------------------------------------

    def __aiter__(self) -> ThreadedSource:
        return self

    async def __anext__(self) -> Frame:
        if self._closed:
            raise StopAsyncIteration
        self._start()
        while True:
            item = await self._handoff.get()
            if isinstance(item, Frame):
                return item
            self._apply(item)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._handoff.close()
        thread = self._thread
        if thread is None:
            return
        assert self._exited is not None
        await asyncio.wait({self._exited}, timeout=self._join_timeout_s)
        if thread.is_alive():
            log.debug(
                "%s: decoder thread still blocked in I/O; it exits on its read timeout",
                self._describe(),
            )

    async def __aenter__(self) -> ThreadedSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def stats(self) -> SourceStats:
        p = self._producer
        return SourceStats(p.frames_decoded, self._handoff.dropped, p.reconnects, p.decode_errors)

    # -- for subclasses -----------------------------------------------------------------------

    @abstractmethod
    def _produce(self, out: Producer) -> None:
        """Blocking: decode and `out.frame(...)` until the stream ends; raise SourceError on failure."""

    @abstractmethod
    def _describe(self) -> str:
        """A short, credential-free name for logs ("rtsp://cam/stream", "file clip.mp4")."""

    # -- internals ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        self._thread = threading.Thread(
            target=self._run,
            args=(loop, self._exited),
            name=f"source-{self.stream_id}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, loop: asyncio.AbstractEventLoop, exited: asyncio.Future[None]) -> None:
        try:
            self._run_producer()
        finally:
            try:
                loop.call_soon_threadsafe(_resolve, exited)
            except RuntimeError:  # the loop is already closed
                pass

    def _run_producer(self) -> None:
        out = self._producer
        try:
            self._produce(out)
            out.status(SourceState.ENDED)
        except HandoffClosed:
            return  # aclose(): nobody is listening any more
        except SourceError as e:
            # The chain may hold FFmpeg's exception, whose text carries the raw URL: drop it.
            e.__cause__ = e.__context__ = None
            log.debug("%s", e)  # whoever iterates gets it and reports it (the engine: one line)
            self._finish_failed(out, e)
            return
        except Exception as e:  # a bug, not a stream condition: surface it to the iterator as is
            log.exception("%s: decoder thread crashed", self._describe())
            self._finish_failed(out, e)
            return
        self._handoff.finish()

    def _finish_failed(self, out: Producer, error: BaseException) -> None:
        try:
            out.status(SourceState.FAILED)
        except HandoffClosed:
            return
        self._handoff.finish(error)

    def _apply(self, notice: _Notice) -> None:
        if isinstance(notice, _Info):
            self.info = notice.info
        elif isinstance(notice, _Gap):
            if self.on_gap is not None:
                self.on_gap(notice.seconds)
        elif isinstance(notice, SourceNote):
            if self.on_note is not None:
                self.on_note(notice)
        elif self.on_status is not None:
            self.on_status(notice.state)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
