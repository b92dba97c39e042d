"""The one contract every source keeps.

A source is an async iterator of `Frame`s; the end of the stream is the end of iteration. Decoding
runs in a thread, never on the event loop. `aclose()` is idempotent, returns promptly even when FFmpeg
is blocked in a read, and stops the thread. A failure that the source cannot recover from (bad URL,
unreadable file) is raised to whoever iterates it as `SourceError` with a one-line message fit for a
user and free of credentials.

Live sources report a disconnect-and-reconnect to the engine through `on_gap(seconds)` (set by the
session) so the tracker can `mark_gap` and keep IDs across short drops, and every state change through
`on_status(SourceState)`. Both callbacks run on the event loop, inside `__anext__`, in order with the
frames: a gap is reported before the first frame after it is returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from streamer.types import Frame, SourceInfo, SourceState


class SourceError(RuntimeError):
    """A source failed for good; the message is one clear line without credentials."""


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Counters of one source since it was created (read them from the event loop)."""

    frames_decoded: int  # frames that left the decoder
    frames_dropped: (
        int  # live hand-off only: frames overwritten by a newer one before the loop took them
    )
    reconnects: int  # successful reopenings after a disconnect or stall
    decode_errors: int  # packets the decoder rejected and skipped (the stream went on)


@runtime_checkable
class Source(Protocol):
    info: SourceInfo | None  # None until the first frame is decoded
    on_gap: Callable[[float], None] | None
    on_status: Callable[[SourceState], None] | None  # SourceState is a str (StrEnum)

    def __aiter__(self) -> AsyncIterator[Frame]: ...

    async def aclose(self) -> None: ...
