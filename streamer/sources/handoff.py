"""The bounded hand-off from a decoder thread to the event loop.

The thread `put`s frames and notices; the loop `await get()`s them in the order they were put. Only
frames count against the capacity, and only frames are ever dropped: notices (status changes, gaps,
stream info) are few and must all arrive. What happens when the frames fill the capacity is the
policy, named by `HandoffPolicy`:

* `LATEST` (live sources): the oldest waiting frame is dropped and counted; the thread never waits,
  so a slow consumer always gets the newest frame and latency never builds up.
* `BLOCK` (files): the thread waits for room, so no frame is lost and decoding runs no further ahead
  than the capacity.

The loop is woken through `call_soon_threadsafe` only when it is actually waiting.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from streamer.types import Frame

N = TypeVar("N")  # notice type


class HandoffPolicy(StrEnum):
    LATEST = "latest"  # drop the oldest waiting frame, never block the decoder
    BLOCK = "block"  # the decoder waits for room; nothing is lost


class HandoffClosed(Exception):
    """Raised in the decoder thread by `put_*` once the consumer has closed the hand-off."""


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


class Handoff(Generic[N]):
    def __init__(self, capacity: int, policy: HandoffPolicy) -> None:
        if capacity < 1:
            raise ValueError(f"hand-off capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.policy = policy
        self.dropped = 0
        self._items: deque[Frame | N | _End] = deque()
        self._frames = 0  # frames currently in _items
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._closed = False  # the consumer is gone: producers stop
        self._finished = False  # the producer put its _End
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- decoder thread side ------------------------------------------------------------------

    def put_frame(self, frame: Frame) -> None:
        with self._lock:
            if self.policy is HandoffPolicy.BLOCK:
                while self._frames >= self.capacity and not self._closed:
                    self._room.wait()
            if self._closed:
                raise HandoffClosed
            if self._frames >= self.capacity:  # LATEST: the newest wins
                self._drop_oldest_frame()
            self._items.append(frame)
            self._frames += 1
            self._wake_locked()

    def put_notice(self, notice: N) -> None:
        with self._lock:
            if self._closed:
                raise HandoffClosed
            self._items.append(notice)
            self._wake_locked()

    def finish(self, error: BaseException | None = None) -> None:
        """The producer is done; `get()` raises `error` (or ends) after the items before it."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._items.append(_End(error))
            self._wake_locked()

    def sleep(self, seconds: float) -> None:
        """Let a paced producer sleep `seconds` unless the consumer closes first (HandoffClosed)."""
        deadline = time.monotonic() + seconds
        with self._lock:
            while not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._room.wait(left)  # also woken by every frame taken: wait out the rest
            raise HandoffClosed

    # -- event loop side ----------------------------------------------------------------------

    async def get(self) -> Frame | N:
        """The next frame or notice; raises StopAsyncIteration at the end, or the producer's error."""
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    if isinstance(item, Frame):
                        self._frames -= 1
                        self._room.notify_all()
                    break
                if self._closed:
                    raise StopAsyncIteration
                self._loop = asyncio.get_running_loop()
                waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if isinstance(item, _End):
            with self._lock:
                self._closed = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """The consumer is done: wake a blocked producer (it gets HandoffClosed) and drop the rest."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._frames = 0
            self._room.notify_all()

    # -- internals ----------------------------------------------------------------------------

    def _drop_oldest_frame(self) -> None:
        for i, item in enumerate(self._items):
            if isinstance(item, Frame):
                del self._items[i]
                self._frames -= 1
                self.dropped += 1
                return

    def _wake_locked(self) -> None:
        waiter, loop = self._waiter, self._loop
        if waiter is None or loop is None:
            return
        self._waiter = None
        try:
            loop.call_soon_threadsafe(_set_done, waiter)
        except RuntimeError:  # the loop is closed: nobody is left to wake
            pass


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
