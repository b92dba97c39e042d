"""Golden bytes: the committed wire format, checked both ways, plus schema-evolution cases.

The files in golden/ come from golden_events.py; regenerate them only on purpose with
`.venv/bin/python -m tests.protocols.golden_events --write` and review the diff.
"""

from __future__ import annotations

import msgpack
import pytest

from protocols import codec
from protocols.errors import ProtocolError
from protocols.events import (
    KNOWN_EVENTS,
    DropCounts,
    EndReason,
    FrameResult,
    ObjectState,
    StreamState,
    StreamStatus,
    Unknown,
)
from tests.protocols.golden_events import EXPECTED, golden_path


def test_every_event_type_has_a_golden_file() -> None:
    tags = {cls.TAG for cls in KNOWN_EVENTS}
    assert tags <= set(EXPECTED)
    for name in EXPECTED:
        assert golden_path(name).is_file(), f"missing {golden_path(name)}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_decodes_to_expected(name: str) -> None:
    assert codec.decode(golden_path(name).read_bytes()) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_encodes_to_golden(name: str) -> None:
    assert codec.encode(EXPECTED[name]) == golden_path(name).read_bytes()


def _wire(name: str) -> dict:
    return msgpack.unpackb(golden_path(name).read_bytes())


def _bytes(body: dict) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def test_fields_from_a_newer_version_are_ignored() -> None:
    body = _wire("frame_result")
    body["v"] = 7
    body["future"] = {"nested": [1, 2, 3]}
    body["o"][0]["depth_m"] = 3.5  # unknown field inside a nested struct
    body["o"][0]["rle"]["fmt"] = "coco"
    assert codec.decode(_bytes(body)) == EXPECTED["frame_result"]


def test_fields_added_later_take_their_defaults_when_absent() -> None:
    body = _wire("stream_status")
    del body["dc"], body["sub"]  # as an older sender would write it
    event = codec.decode(_bytes(body))
    assert isinstance(event, StreamStatus)
    assert event.drops == DropCounts() and event.subscriber_dropped == 0


def test_enum_values_from_a_newer_version_decode_as_unknown() -> None:
    status = _wire("stream_status")
    status["st"] = 99
    assert codec.decode(_bytes(status)).state is StreamState.UNKNOWN
    ended = _wire("object_ended")
    ended["r"] = 12
    assert codec.decode(_bytes(ended)).reason is EndReason.UNKNOWN
    frame = _wire("frame_result")
    frame["o"][0]["st"] = 5
    decoded = codec.decode(_bytes(frame))
    assert isinstance(decoded, FrameResult)
    assert decoded.objects[0].state is ObjectState.UNKNOWN


def test_unknown_type_keeps_its_fields_and_round_trips() -> None:
    data = golden_path("unknown").read_bytes()
    event = codec.decode(data)
    assert event == Unknown(type="zone_entered", version=2, fields={"s": "cam1", "zone": 3})
    assert codec.encode(event) == data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("q"), "FrameResult: missing field 'seq'"),
        (lambda b: b.update(q="42"), "FrameResult.seq: expected int, got str"),
        (lambda b: b.update(q=True), "FrameResult.seq: expected int, got bool"),
        (lambda b: b.update(tb=[1, 0]), "FrameResult.time_base: fraction denominator must be > 0"),
        (lambda b: b["o"][1].update(sc="x"), "FrameResult.objects: [1]: ObjectMask.score"),
        (lambda b: b["o"][0]["rle"].update(counts="abc"), "Rle.counts: expected bytes, got str"),
        (lambda b: b["o"][0].update(box=[1.0, 2.0]), "ObjectMask.box_xyxy: expected array of 4"),
        (lambda b: b.update(v=0), "protocol version 'v' must be an int >= 1"),
        (lambda b: b.update(t=5), "event type tag 't' must be a string, got int"),
        (lambda b: b.pop("t"), "event type tag 't' must be a string, got nil"),
    ],
)
def test_malformed_fields_raise_protocol_error_naming_the_field(mutate, message: str) -> None:
    body = _wire("frame_result")
    mutate(body)
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("]", r"\]")):
        codec.decode(_bytes(body))
