"""The two hand-off channels of the pipeline; both bounded, both with a named overflow policy.

`Latest[T]` is a one-slot mailbox for live frames: a new item replaces the waiting one (newest
wins) and the replaced item is counted as dropped. `Bounded[T]` is a FIFO with a fixed capacity
and one of three policies when it is full:

    DROP_OLDEST  the oldest waiting item is discarded and counted (per-subscriber event queues)
    BLOCK        the producer waits for room (file sources: no loss unless asked)
    DISCONNECT   the channel closes itself and the consumer is told why (strict subscribers)

Both are async-iterable; iteration ends once the channel is closed and drained. Closing is
idempotent. `close(error)` makes the consumer's iteration raise that error after the drained items,
so a failure inside a producing stage reaches whoever iterates.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ChannelClosed(Exception):
    """Raised by `get()` once a channel is closed and empty."""


class Disconnected(ChannelClosed):
    """A DISCONNECT-policy channel overflowed: its consumer was too slow and has been cut off."""


class Overflow(enum.Enum):
    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"
    DISCONNECT = "disconnect"


class _Channel(Generic[T]):
    """Shared close/wait machinery; subclasses decide how items are stored."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._closed = False
        self._error: BaseException | None = None
        self._readable = asyncio.Event()  # set while items are waiting or the channel is closed
        self.dropped = 0  # items lost to the overflow policy

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def close(self, error: BaseException | None = None) -> None:
        """End the channel; waiting items stay readable. Idempotent; the first error wins."""
        if not self._closed:
            self._closed = True
            self._error = error
        self._readable.set()
        self._on_close()

    def _on_close(self) -> None:
        pass

    def get_nowait(self) -> T | None:
        """The next item, or None when nothing is waiting (raises once closed and drained)."""
        if self._items:
            item = self._items.popleft()
            self._on_take()
            return item
        if self._closed:
            self._raise_closed()
        return None

    async def get(self) -> T:
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            self._readable.clear()
            await self._readable.wait()

    def _on_take(self) -> None:
        if not self._items and not self._closed:
            self._readable.clear()

    def _raise_closed(self) -> None:
        if self._error is not None:
            raise self._error
        raise ChannelClosed

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            try:
                item = await self.get()
            except Disconnected:
                raise
            except ChannelClosed:
                return
            yield item


class Latest(_Channel[T]):
    """One slot, newest wins: `put` never waits; an unread item it replaces is counted in `dropped`."""

    def put(self, item: T) -> None:
        if self._closed:
            raise ChannelClosed("put on a closed Latest")
        if self._items:
            self._items.clear()
            self.dropped += 1
        self._items.append(item)
        self._readable.set()


class Bounded(_Channel[T]):
    """FIFO of at most `maxsize` items with a named overflow policy (see module docstring)."""

    def __init__(self, maxsize: int, policy: Overflow) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        super().__init__()
        self.maxsize = maxsize
        self.policy = policy
        self._writable = asyncio.Event()
        self._writable.set()

    @property
    def disconnected(self) -> bool:
        return isinstance(self._error, Disconnected)

    def put_nowait(self, item: T) -> bool:
        """Enqueue without waiting. Returns False when the item was not enqueued (BLOCK and full,
        or the channel was disconnected by this put)."""
        if self._closed:
            raise ChannelClosed("put on a closed Bounded")
        if len(self._items) >= self.maxsize:
            if self.policy is Overflow.BLOCK:
                return False
            if self.policy is Overflow.DISCONNECT:
                self.dropped += 1
                self._items.clear()
                self.close(Disconnected(f"consumer fell {self.maxsize} items behind"))
                return False
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._readable.set()
        if len(self._items) >= self.maxsize:
            self._writable.clear()
        return True

    async def put(self, item: T) -> bool:
        """Enqueue; under BLOCK wait for room (raises ChannelClosed if closed while waiting)."""
        while not self.put_nowait(item):
            if self.policy is not Overflow.BLOCK:
                return False
            await self._writable.wait()
        return True

    def _on_take(self) -> None:
        super()._on_take()
        self._writable.set()

    def _on_close(self) -> None:
        self._writable.set()  # wake blocked producers so that their next put raises
