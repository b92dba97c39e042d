"""Length-prefixed framing for byte streams (TCP, pipes, files): 4-byte big-endian length, payload.

Message transports (WebSocket, NATS, DataChannel) carry one encoded event per message and need no
framing; byte streams need it to find where one event ends. A length above `max_size` is rejected
as soon as its header arrives, before any of the payload is buffered.
"""

from __future__ import annotations

import asyncio
import struct

from protocols.codec import DEFAULT_MAX_SIZE
from protocols.errors import ProtocolError

HEADER = struct.Struct(">I")  # payload length in bytes, unsigned 32-bit big-endian


def frame(payload: bytes) -> bytes:
    """`payload` with its length prefix."""
    if len(payload) > 0xFFFFFFFF:
        raise ProtocolError(f"payload of {len(payload)} bytes does not fit a 4-byte length")
    return HEADER.pack(len(payload)) + payload


def check_length(length: int, max_size: int) -> None:
    if length > max_size:
        raise ProtocolError(f"frame of {length} bytes exceeds the limit of {max_size} bytes")


class FrameReader:
    """Incremental parser: feed it bytes as they arrive, get back every complete payload.

    Holds at most one incomplete frame (bounded by `max_size` + 4 bytes). After a ProtocolError
    (an oversized length) the stream position is lost and every later `feed` raises again.
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._max_size = max_size
        self._buffer = bytearray()
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held of a frame that is not complete yet (0 at a frame boundary)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add `data`; return the payloads it completed, in order."""
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        payloads = []
        start = 0
        try:
            while len(self._buffer) - start >= HEADER.size:
                (length,) = HEADER.unpack_from(self._buffer, start)
                check_length(length, self._max_size)
                end = start + HEADER.size + length
                if end > len(self._buffer):
                    break
                payloads.append(bytes(self._buffer[start + HEADER.size : end]))
                start = end
        except ProtocolError as exc:
            self._failed = exc
            raise
        finally:
            del self._buffer[:start]
        return payloads


async def read_frame(
    reader: asyncio.StreamReader, *, max_size: int = DEFAULT_MAX_SIZE
) -> bytes | None:
    """The next payload from an asyncio stream; None at a clean end of stream.

    Raises ProtocolError when the stream ends inside a frame or announces an oversized one.
    """
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(
            f"stream ended inside a frame header ({len(exc.partial)} of 4 bytes)"
        ) from None
    (length,) = HEADER.unpack(header)
    check_length(length, max_size)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"stream ended inside a frame ({len(exc.partial)} of {length} bytes)"
        ) from None
