"""Length-prefixed framing and the append-only event log, including torn and corrupt records."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocols import codec
from protocols.errors import ProtocolError
from protocols.framing import HEADER, FrameReader, frame, read_frame
from protocols.log import LogReader, LogWriter, read_log, repair_tail
from tests.protocols.golden_events import EXPECTED

EVENTS = list(EXPECTED.values())
PAYLOADS = [codec.encode(e) for e in EVENTS]


# --- framing ---------------------------------------------------------------------------------


def test_frame_prefixes_the_big_endian_length() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"") == b"\x00\x00\x00\x00"


@pytest.mark.parametrize("chunk", [1, 3, 4, 5, 17, 1000])
def test_reader_reassembles_frames_split_anywhere(chunk: int) -> None:
    stream = b"".join(frame(p) for p in PAYLOADS)
    reader = FrameReader()
    out = []
    for i in range(0, len(stream), chunk):
        out += reader.feed(stream[i : i + chunk])
    assert out == PAYLOADS
    assert reader.buffered == 0


def test_reader_holds_an_incomplete_frame() -> None:
    reader = FrameReader()
    data = frame(b"hello")
    assert reader.feed(data[:6]) == []
    assert reader.buffered == 6
    assert reader.feed(data[6:] + data[:2]) == [b"hello"]
    assert reader.buffered == 2


def test_reader_rejects_an_oversized_frame_from_its_header_alone() -> None:
    reader = FrameReader(max_size=10)
    assert reader.feed(frame(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(ProtocolError, match="frame of 11 bytes exceeds the limit of 10"):
        reader.feed(HEADER.pack(11))  # no payload needed to know
    with pytest.raises(ProtocolError):  # the position in the stream is lost for good
        reader.feed(frame(b"ok"))


async def test_read_frame_from_an_asyncio_stream() -> None:
    stream = asyncio.StreamReader()
    stream.feed_data(frame(b"one") + frame(b"two"))
    stream.feed_eof()
    assert await read_frame(stream) == b"one"
    assert await read_frame(stream) == b"two"
    assert await read_frame(stream) is None  # clean end


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "inside a frame header"),
        (frame(b"abcdef")[:-2], "inside a frame \\(4 of 6 bytes\\)"),
        (HEADER.pack(1 << 20) + b"x", "exceeds the limit"),
    ],
)
async def test_read_frame_rejects_truncated_and_oversized(data: bytes, message: str) -> None:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    with pytest.raises(ProtocolError, match=message):
        await read_frame(stream, max_size=1000)


# --- log -------------------------------------------------------------------------------------


def test_log_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "events.msgpack"
    with LogWriter(path) as log:
        for event in EVENTS:
            log.write(event)
    assert list(read_log(path)) == EVENTS
    assert list(LogReader(path).records()) == PAYLOADS  # byte-identical to what was sent


def test_log_appends_across_writers(tmp_path: Path) -> None:
    path = tmp_path / "events.msgpack"
    with LogWriter(path) as log:
        log.write(EVENTS[0])
    with LogWriter(path) as log:
        log.write_encoded(PAYLOADS[1])
    assert list(read_log(path)) == EVENTS[:2]


@pytest.mark.parametrize("cut", [1, 3, 4, 10])
def test_truncated_last_record_stops_cleanly_or_raises_when_strict(
    tmp_path: Path, cut: int
) -> None:
    path = tmp_path / "torn.msgpack"
    with LogWriter(path) as log:
        for event in EVENTS[:3]:
            log.write(event)
    last = len(frame(PAYLOADS[2]))
    path.write_bytes(path.read_bytes()[:-last] + frame(PAYLOADS[2])[:cut])

    reader = LogReader(path)
    assert list(reader) == EVENTS[:2]
    assert reader.truncated_bytes == cut
    with pytest.raises(ProtocolError, match="truncated last"):
        list(LogReader(path, strict=True))


def test_writer_cuts_a_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "torn.msgpack"
    path.write_bytes(frame(PAYLOADS[0]) + frame(PAYLOADS[1])[:7])
    with LogWriter(path) as log:
        assert log.repaired_bytes == 7
        log.write(EVENTS[2])
    assert list(read_log(path, strict=True)) == [EVENTS[0], EVENTS[2]]
    assert repair_tail(path) == 0


def test_corrupt_records_raise_with_their_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.msgpack"
    path.write_bytes(frame(PAYLOADS[0]) + frame(b"\xc1garbage"))
    with pytest.raises(ProtocolError, match="record 1: not a msgpack message"):
        list(read_log(path))
    path.write_bytes(HEADER.pack(0xFFFFFFFF) + b"x")
    with pytest.raises(ProtocolError, match="corrupt record"):
        list(LogReader(path, max_size=1 << 20))


def test_closed_writer_refuses_writes(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "x.msgpack")
    log.close()
    log.close()  # idempotent
    with pytest.raises(ValueError, match="is closed"):
        log.write(EVENTS[0])
