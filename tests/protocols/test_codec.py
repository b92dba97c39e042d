"""Codec properties: round trips of every event type, encode-side checks, and a decode fuzz test
that may only ever raise ProtocolError."""

from __future__ import annotations

import dataclasses
import enum
import random
import types
import typing
from fractions import Fraction
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import codec
from protocols.errors import ProtocolError
from protocols.events import (
    KNOWN_EVENTS,
    PROTOCOL_VERSION,
    Event,
    FrameResult,
    Hello,
    ObjectMask,
    ObjectState,
    StreamStarted,
    Unknown,
    supports_concepts_changed,
    supports_drop_causes,
    supports_object_lifecycle,
)
from protocols.rle import Rle
from tests.protocols.golden_events import EXPECTED, golden_path

# --- round trips -----------------------------------------------------------------------------


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a schema type hint, within what msgpack can carry."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | strategy_for(inner)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    simple = {
        bool: st.booleans(),
        int: st.integers(-(2**63), 2**64 - 1),
        float: st.floats(allow_nan=False),
        str: st.text(max_size=40),
        bytes: st.binary(max_size=40),
        Fraction: st.builds(Fraction, st.integers(-(10**9), 10**9), st.integers(1, 10**9)),
    }
    if hint in simple:
        return simple[hint]
    if isinstance(hint, type) and issubclass(hint, enum.IntEnum):
        return st.sampled_from(list(hint))
    assert dataclasses.is_dataclass(hint), hint
    hints = typing.get_type_hints(hint)
    fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(hint)}
    return st.builds(hint, **fields)


any_event = st.one_of([strategy_for(cls) for cls in KNOWN_EVENTS])


@settings(max_examples=300, deadline=None)
@given(any_event)
def test_every_event_round_trips(event: Event) -> None:
    data = codec.encode(event)
    assert codec.decode(data) == event
    assert codec.encode(codec.decode(data)) == data  # deterministic bytes


@settings(max_examples=50, deadline=None)
@given(
    st.text(max_size=20),
    st.integers(1, 2**31),
    st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**64 - 1)),
)
def test_unknown_events_round_trip(tag: str, version: int, fields: dict[str, int]) -> None:
    if tag in {cls.TAG for cls in KNOWN_EVENTS}:
        return
    event = Unknown(
        type=tag, version=version, fields={k: v for k, v in fields.items() if k not in "tv"}
    )
    assert codec.decode(codec.encode(event)) == event


def test_every_message_carries_its_tag_and_the_protocol_version() -> None:
    for name, event in EXPECTED.items():
        body = msgpack.unpackb(codec.encode(event))
        if name != "unknown":
            assert body["t"] == type(event).TAG and body["v"] == PROTOCOL_VERSION


def test_capability_helpers_answer_for_version_one() -> None:
    for helper in (supports_object_lifecycle, supports_concepts_changed, supports_drop_causes):
        assert helper(PROTOCOL_VERSION)
        assert not helper(0)


# --- encoding ---------------------------------------------------------------------------------


def _object(**changes: Any) -> ObjectMask:
    base = ObjectMask(
        object_id=1, concept_id=None, score=0.5, box_xyxy=(0.0, 0.0, 1.0, 1.0), area=1,
        rle=Rle(size=(1, 1), counts=b"01"), state=ObjectState.CONFIRMED,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_encode_accepts_numpy_scalars_from_the_model() -> None:
    obj = _object(object_id=np.int64(3), score=np.float32(0.25), area=np.int32(1))
    decoded = codec.decode(codec.encode(_frame(obj)))
    assert isinstance(decoded, FrameResult)
    assert decoded.objects[0].object_id == 3 and decoded.objects[0].score == 0.25


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"object_id": 1.5}, "ObjectMask.object_id: expected int, got float"),
        ({"score": "high"}, "ObjectMask.score: expected float, got str"),
        ({"state": "confirmed"}, "ObjectMask.state: expected ObjectState, got str"),
        ({"box_xyxy": (1.0, 2.0)}, "ObjectMask.box_xyxy: expected 4-tuple"),
        ({"rle": {"size": [1, 1], "counts": b"01"}}, "ObjectMask.rle: expected Rle, got dict"),
        ({"object_id": 2**64}, "integer out of range|int too big|cannot encode"),
    ],
)
def test_encode_rejects_values_the_schema_cannot_carry(changes: dict, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        codec.encode(_frame(_object(**changes)))


def test_encode_rejects_non_events() -> None:
    with pytest.raises(ProtocolError, match="not an event type"):
        codec.encode({"t": "hello"})  # type: ignore[arg-type]


def test_stream_started_never_carries_credentials() -> None:
    event = StreamStarted(
        stream_id="a", width=1, height=1, fps=1.0, time_base=Fraction(1, 1),
        source="rtsp://admin:hunter2@cam/s?password=hunter2",
    )  # fmt: skip
    data = codec.encode(event)
    assert b"hunter2" not in data and b"admin" not in data
    assert codec.decode(data) == event


def _frame(*objects: ObjectMask) -> FrameResult:
    return FrameResult(
        stream_id="s", seq=0, pts=None, time_base=Fraction(1, 30), captured_ns=0,
        published_ns=0, width=1, height=1, objects=objects,
    )  # fmt: skip


# --- decoding limits and fuzzing ---------------------------------------------------------------


def test_oversized_payloads_are_rejected_before_parsing() -> None:
    data = codec.encode(EXPECTED["frame_result"])
    assert codec.decode(data, max_size=len(data)) == EXPECTED["frame_result"]
    with pytest.raises(ProtocolError, match=f"exceeds the limit of {len(data) - 1} bytes"):
        codec.decode(data, max_size=len(data) - 1)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01\x02", b"\x81\x01\x02", "text", None])
def test_non_events_raise_protocol_error(data: Any) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(data)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = golden_path("hello").read_bytes()
    assert codec.decode(bytearray(data)) == codec.decode(memoryview(data)) == EXPECTED["hello"]
    assert isinstance(codec.decode(data), Hello)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "big", "float", "str", "bytes", "none", "bool"]
    if depth < 2:
        kinds += ["list", "map"]
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "big":
        return rng.choice([2**63, -(2**63), 2**64 - 1, 2**31])
    if kind == "float":
        return rng.choice([0.0, -1.5, float("inf"), float("nan"), 1e308])
    if kind == "str":
        return rng.choice(["", "cam1", "é", "\x00"])
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 8))
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["id", "s", "c", "o", "x"]): _random_value(rng, depth + 1) for _ in range(3)}


def _mutate_wire(body: Any, rng: random.Random) -> None:
    """Replace one value somewhere inside a decoded msgpack body with a random one."""
    node = body
    while True:
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
        elif isinstance(node, list) and node:
            key = rng.randrange(len(node))
        else:
            return
        child = node[key]
        if isinstance(child, dict | list) and child and rng.random() < 0.6:
            node = child
            continue
        if rng.random() < 0.15 and isinstance(node, dict):
            del node[key]
        else:
            node[key] = _random_value(rng)
        return


def _fuzz_inputs(count: int, seed: int = 1234) -> list[bytes]:
    rng = random.Random(seed)
    goldens = [golden_path(name).read_bytes() for name in EXPECTED]
    inputs: list[bytes] = []
    while len(inputs) < count:
        base = rng.choice(goldens)
        way = rng.randrange(5)
        if way == 0:  # random bytes
            inputs.append(rng.randbytes(rng.randint(0, 64)))
        elif way == 1:  # truncated golden
            inputs.append(base[: rng.randrange(len(base))])
        elif way == 2:  # a few flipped bytes
            data = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            inputs.append(bytes(data))
        elif way == 3:  # spliced goldens / inserted garbage
            other = rng.choice(goldens)
            cut = rng.randrange(len(base))
            inputs.append(base[:cut] + other[rng.randrange(len(other)) :] + rng.randbytes(2))
        else:  # well-formed msgpack with one field replaced by a value of a random type
            body = msgpack.unpackb(base)
            for _ in range(rng.randint(1, 3)):
                _mutate_wire(body, rng)
            inputs.append(msgpack.packb(body, use_bin_type=True))
    return inputs


def test_fuzzed_bytes_only_ever_raise_protocol_error() -> None:
    inputs = _fuzz_inputs(12_000)
    outcomes = {"decoded": 0, "rejected": 0}
    for data in inputs:
        try:
            event = codec.decode(data)
        except ProtocolError as exc:
            assert str(exc), "a ProtocolError must say what is wrong"
            outcomes["rejected"] += 1
        else:
            assert isinstance(event, (*KNOWN_EVENTS, Unknown))
            outcomes["decoded"] += 1
    # Both paths were exercised, so the test is not vacuous.
    assert outcomes["decoded"] > 500 and outcomes["rejected"] > 5000, outcomes
