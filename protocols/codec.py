"""One codec for every event: `encode(event) -> bytes`, `decode(bytes) -> event`.

Wire format: one msgpack map per event, `{"t": tag, "v": protocol version, <wire key>: value, ...}`.
Maps rather than positional arrays because maps are what lets the schema grow without a registry of
positions: a decoder looks fields up by key, ignores keys it does not know, and gives a default to
keys an older sender did not write. Keys are short (1-4 characters, declared with `wire()` in
events.py) to keep the per-frame overhead small; a FrameResult's bytes are dominated by the masks'
RLE counts anyway. Value mapping: ints, floats (float64), str and bool as themselves; bytes as
msgpack bin; enums as ints; Fraction as [numerator, denominator]; tuples as arrays; nested structs
(ObjectMask, Rle, ...) as maps with their own keys but no "t"/"v".

The converters are built once from the dataclasses' type hints, so events.py stays the only place a
field is declared. `decode` raises `ProtocolError`, and nothing else, for any input.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import types
import typing
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

import msgpack
import numpy as np

from protocols.errors import ProtocolError
from protocols.events import KNOWN_EVENTS, PROTOCOL_VERSION, Event, Unknown

DEFAULT_MAX_SIZE = 64 * 1024 * 1024  # bytes; a 4K frame with dozens of detailed masks is < 1 MiB
_RESERVED = ("t", "v")  # envelope keys: type tag, protocol version


class _Conv(NamedTuple):
    """Both directions for one Python type: value -> msgpack-able, and back with checking."""

    to_wire: Callable[[Any], Any]
    from_wire: Callable[[Any], Any]


def encode(event: Event) -> bytes:
    """The msgpack bytes of one event. Raises ProtocolError for values the schema cannot carry."""
    if type(event) is Unknown:
        if type(event.type) is not str or type(event.version) is not int:
            raise ProtocolError("cannot encode Unknown: type must be a str and version an int")
        body = {"t": event.type, "v": event.version}
        body.update((k, v) for k, v in event.fields.items() if k not in _RESERVED)
    else:
        struct = _BY_CLASS.get(type(event))
        if struct is None:
            raise ProtocolError(f"cannot encode {type(event).__name__}: not an event type")
        body = {"t": type(event).TAG, "v": PROTOCOL_VERSION}  # type: ignore[union-attr]
        body.update(struct.to_wire(event))
    try:
        return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode {type(event).__name__}: {exc}") from None


def decode(data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_SIZE) -> Event:
    """The event in `data`; `Unknown` for a tag this version does not know.

    Raises ProtocolError for anything else: not bytes, more than `max_size` bytes, not msgpack,
    not a map with a string "t" and an int "v" >= 1, a missing field, or a value of the wrong type.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if size > max_size:
        raise ProtocolError(f"event of {size} bytes exceeds the limit of {max_size} bytes")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack's C unpacker documents no closed set of errors
        raise ProtocolError(f"not a msgpack message: {type(exc).__name__}: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"expected a msgpack map, got {type(body).__name__}")
    tag, version = body.get("t"), body.get("v")
    if type(tag) is not str:
        raise ProtocolError(f"event type tag 't' must be a string, got {_name(tag)}")
    if type(version) is not int or version < 1:
        raise ProtocolError(f"protocol version 'v' must be an int >= 1, got {version!r}")
    event_class = _BY_TAG.get(tag)
    if event_class is None:
        fields = {k: v for k, v in body.items() if k not in _RESERVED}
        return Unknown(type=tag, version=version, fields=fields)
    return _BY_CLASS[event_class].from_wire(body)  # type: ignore[no-any-return]


# --- converters, built from type hints ------------------------------------------------------


def _name(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


def _mismatch(expected: str, value: Any) -> ProtocolError:
    return ProtocolError(f"expected {expected}, got {_name(value)}")


def _int_to(v: Any) -> int:
    try:
        return operator.index(v)  # int, numpy ints; not float
    except TypeError:
        raise _mismatch("int", v) from None


def _int_from(v: Any) -> int:
    if type(v) is not int:
        raise _mismatch("int", v)
    return v


def _float_to(v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
        return float(v)
    raise _mismatch("float", v)


def _float_from(v: Any) -> float:
    if type(v) is float:
        return v
    if type(v) is int:
        return float(v)
    raise _mismatch("float", v)


def _exact(kind: type, expected: str) -> _Conv:
    def check(v: Any) -> Any:
        if type(v) is not kind:
            raise _mismatch(expected, v)
        return v

    return _Conv(check, check)


def _bool_to(v: Any) -> bool:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    raise _mismatch("bool", v)


def _bytes_to(v: Any) -> bytes:
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    raise _mismatch("bytes", v)


def _fraction_to(v: Any) -> list[int]:
    if isinstance(v, Fraction | int) and not isinstance(v, bool):
        f = Fraction(v)
        return [f.numerator, f.denominator]
    raise _mismatch("Fraction", v)


def _fraction_from(v: Any) -> Fraction:
    if type(v) is not list or len(v) != 2 or type(v[0]) is not int or type(v[1]) is not int:
        raise _mismatch("[numerator, denominator] ints", v)
    if v[1] <= 0:
        raise ProtocolError(f"fraction denominator must be > 0, got {v[1]}")
    return Fraction(v[0], v[1])


def _enum(cls: type[enum.IntEnum]) -> _Conv:
    members = {int(m): m for m in cls}
    unknown = cls(0)  # every wire enum's zero is UNKNOWN

    def to_wire(v: Any) -> int:
        if not isinstance(v, cls):
            raise _mismatch(cls.__name__, v)
        return int(v)

    def from_wire(v: Any) -> enum.IntEnum:
        if type(v) is not int:
            raise _mismatch(f"{cls.__name__} (int)", v)
        return members.get(v, unknown)  # a value from a newer version: UNKNOWN

    return _Conv(to_wire, from_wire)


def _optional(inner: _Conv) -> _Conv:
    to_inner, from_inner = inner

    def to_wire(v: Any) -> Any:
        return None if v is None else to_inner(v)

    def from_wire(v: Any) -> Any:
        return None if v is None else from_inner(v)

    return _Conv(to_wire, from_wire)


def _sequence(inner: _Conv) -> _Conv:
    to_inner, from_inner = inner

    def to_wire(v: Any) -> list[Any]:
        if not isinstance(v, tuple | list):
            raise _mismatch("tuple", v)
        out: list[Any] = []
        try:
            for item in v:
                out.append(to_inner(item))
        except ProtocolError as exc:
            raise ProtocolError(f"[{len(out)}]: {exc}") from None
        return out

    def from_wire(v: Any) -> tuple[Any, ...]:
        if type(v) is not list:
            raise _mismatch("array", v)
        out: list[Any] = []
        try:
            for item in v:
                out.append(from_inner(item))
        except ProtocolError as exc:
            raise ProtocolError(f"[{len(out)}]: {exc}") from None
        return tuple(out)

    return _Conv(to_wire, from_wire)


def _fixed(inner: _Conv, n: int) -> _Conv:
    """A tuple of exactly `n` values of one type (a box, a size)."""
    sequence = _sequence(inner)

    def to_wire(v: Any) -> list[Any]:
        if not isinstance(v, tuple | list) or len(v) != n:
            raise _mismatch(f"{n}-tuple", v)
        return sequence.to_wire(v)  # type: ignore[no-any-return]

    def from_wire(v: Any) -> tuple[Any, ...]:
        if type(v) is not list or len(v) != n:
            raise _mismatch(f"array of {n}", v)
        return sequence.from_wire(v)  # type: ignore[no-any-return]

    return _Conv(to_wire, from_wire)


def _struct(cls: type) -> _Conv:
    """A dataclass as a map keyed by its fields' wire keys."""
    hints = typing.get_type_hints(cls)
    fields = []  # (attribute, wire key, converter, default)
    for f in dataclasses.fields(cls):
        key = f.metadata.get("wire", f.name)
        if key in _RESERVED:
            raise TypeError(f"{cls.__name__}.{f.name}: wire key {key!r} is reserved")
        fields.append((f.name, key, _converter(hints[f.name]), f.default))
    keys = [key for _, key, _, _ in fields]
    if len(set(keys)) != len(keys):
        raise TypeError(f"{cls.__name__}: duplicate wire keys {keys}")
    plan = [(name, key, conv.to_wire) for name, key, conv, _ in fields]
    decode_plan = [(name, key, conv.from_wire, default) for name, key, conv, default in fields]
    label = cls.__name__

    def to_wire(obj: Any) -> dict[str, Any]:
        if type(obj) is not cls:
            raise _mismatch(label, obj)
        out = {}
        for name, key, convert in plan:
            try:
                out[key] = convert(getattr(obj, name))
            except ProtocolError as exc:
                raise ProtocolError(f"{label}.{name}: {exc}") from None
        return out

    def from_wire(body: Any) -> Any:
        if type(body) is not dict:
            raise _mismatch(f"{label} map", body)
        values = []
        for name, key, from_field, default in decode_plan:
            if key in body:
                try:
                    values.append(from_field(body[key]))
                except ProtocolError as exc:
                    raise ProtocolError(f"{label}.{name}: {exc}") from None
            elif default is not dataclasses.MISSING:
                values.append(default)  # a field newer than the sender
            else:
                raise ProtocolError(f"{label}: missing field {name!r} (wire key {key!r})")
        return cls(*values)

    return _Conv(to_wire, from_wire)


def _converter(hint: Any) -> _Conv:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]  # only `X | None` is allowed
        return _optional(_converter(inner))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(_converter(args[0]))
        if len(set(args)) != 1:
            raise TypeError(f"fixed tuples must hold one type, got {hint!r}")
        return _fixed(_converter(args[0]), len(args))
    if hint is bool:
        return _Conv(_bool_to, _exact(bool, "bool").from_wire)
    if hint is int:
        return _Conv(_int_to, _int_from)
    if hint is float:
        return _Conv(_float_to, _float_from)
    if hint is str:
        return _exact(str, "str")
    if hint is bytes:
        return _Conv(_bytes_to, _exact(bytes, "bytes").from_wire)
    if hint is Fraction:
        return _Conv(_fraction_to, _fraction_from)
    if isinstance(hint, type) and issubclass(hint, enum.IntEnum):
        return _enum(hint)
    if dataclasses.is_dataclass(hint):
        return _struct(hint)  # type: ignore[arg-type]
    raise TypeError(
        f"no wire converter for {hint!r}"
    )  # schema bugs fail at import, not on the wire


_BY_CLASS: dict[type, _Conv] = {cls: _struct(cls) for cls in KNOWN_EVENTS}
_BY_TAG: dict[str, type] = {cls.TAG: cls for cls in KNOWN_EVENTS}  # type: ignore[attr-defined]
if len(_BY_TAG) != len(KNOWN_EVENTS):
    raise TypeError("two events share a type tag")
