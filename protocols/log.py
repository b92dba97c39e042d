"""Append-only event log: a `.msgpack` file of length-prefixed encoded events (see framing.py).

Each record is the exact bytes a WebSocket message or NATS payload carries, behind a 4-byte
big-endian length, so a log replays byte-identically and its records can be found without parsing
msgpack. (Plain concatenated msgpack would also be readable, but a torn record could then only be
told from a corrupt one by parsing it.)

Torn tails: a writer killed mid-record leaves a truncated last record. The reader stops cleanly
before it and reports it in `LogReader.truncated_bytes` (or raises ProtocolError with
`strict=True`); a log being appended to live looks the same. `LogWriter` cuts a torn tail off before
appending, so new records never follow a partial one. A complete record that does not decode, or a
length above `max_size`, is corruption and always raises ProtocolError.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from protocols.codec import DEFAULT_MAX_SIZE, decode, encode
from protocols.errors import ProtocolError
from protocols.events import Event
from protocols.framing import HEADER, check_length, frame


class LogWriter:
    """Appends events to a log file; one `write` call per record, flushed per record by default."""

    def __init__(self, path: str | os.PathLike[str], *, flush_each: bool = True) -> None:
        self.path = Path(path)
        self.repaired_bytes = repair_tail(self.path) if self.path.exists() else 0
        self._file: BinaryIO | None = open(self.path, "ab")  # closed by close()
        self._flush_each = flush_each

    def write(self, event: Event) -> None:
        self.write_encoded(encode(event))

    def write_encoded(self, payload: bytes) -> None:
        """Append already encoded event bytes (what a publisher sends to every sink)."""
        if self._file is None:
            raise ValueError(f"log {self.path} is closed")
        self._file.write(frame(payload))
        if self._flush_each:
            self._file.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close; idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LogReader:
    """Reads a log front to back: `records()` yields raw payloads, iteration yields events."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        strict: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.path = Path(path)
        self.strict = strict
        self.max_size = max_size
        self.truncated_bytes = 0  # size of a torn last record, known once reading has ended

    def records(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            while True:
                header = f.read(HEADER.size)
                if not header:
                    return
                if len(header) < HEADER.size:
                    self._torn(len(header), "header")
                    return
                (length,) = HEADER.unpack(header)
                try:
                    check_length(length, self.max_size)
                except ProtocolError as exc:
                    raise ProtocolError(f"{self.path}: corrupt record: {exc}") from None
                payload = f.read(length)
                if len(payload) < length:
                    self._torn(HEADER.size + len(payload), f"record of {length} bytes")
                    return
                yield payload

    def __iter__(self) -> Iterator[Event]:
        for index, payload in enumerate(self.records()):
            try:
                yield decode(payload, max_size=self.max_size)
            except ProtocolError as exc:
                raise ProtocolError(f"{self.path}: record {index}: {exc}") from None

    def _torn(self, size: int, what: str) -> None:
        self.truncated_bytes = size
        if self.strict:
            raise ProtocolError(f"{self.path}: truncated last {what} ({size} bytes)")


def read_log(path: str | os.PathLike[str], *, strict: bool = False) -> Iterator[Event]:
    """Every event of a log; stops cleanly at a torn last record unless `strict`."""
    return iter(LogReader(path, strict=strict))


def repair_tail(path: str | os.PathLike[str]) -> int:
    """Cut a torn last record off a log file (walking the length headers only); bytes removed."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        end = 0
        while end < size:
            f.seek(end)
            header = f.read(HEADER.size)
            if len(header) < HEADER.size:
                break
            (length,) = HEADER.unpack(header)
            if end + HEADER.size + length > size:
                break
            end += HEADER.size + length
        if end < size:
            f.truncate(end)
    return size - end
