"""The one contract every source keeps.

A source is an async iterator of `Frame`s; the end of the stream is the end of iteration. Decoding
runs in a thread, never on the event loop. `aclose()` is idempotent and stops the thread. A failure
that the source cannot recover from (bad URL, unreadable file) is raised to whoever iterates it as
`SourceError` with a one-line message fit for a user.

Live sources report a disconnect-and-reconnect to the engine through `on_gap(seconds)` (set by the
session) so the tracker can `mark_gap` and keep IDs across short drops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

from streamer.types import Frame, SourceInfo


class SourceError(RuntimeError):
    """A source failed for good; the message is one clear line without credentials."""


@runtime_checkable
class Source(Protocol):
    info: SourceInfo | None  # None until the first frame is decoded
    on_gap: Callable[[float], None] | None
    on_status: Callable[[str], None] | None  # connecting / live / reconnecting / gap / ended / failed

    def __aiter__(self) -> AsyncIterator[Frame]: ...

    async def aclose(self) -> None: ...
