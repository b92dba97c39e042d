"""A stream's durable state: what a new owner needs to go on with the same object IDs.

`StreamSnapshot` is written about once a second by the engine that runs a stream (to a NATS KV
bucket, streamer/state/) and read by whichever engine runs it next. It holds what cannot be
re-detected: the concepts, the next object ID, and for every live object its ID, concept, box,
low-resolution mask and object pointer, so that detections on the first frames after the hand-over
can take back their objects' IDs. It does not hold the tracker's memory bank (megabytes per
object); the new owner re-detects.

Wire format: one msgpack map `{"k": "sam3.snapshot", "v": 1, ...}`. Unlike events (protocols/
codec.py) a snapshot is not a grow-only contract with subscribers: it is read back by an engine of
the same or a later version, which refuses a newer version it cannot read. Masks are COCO RLE at
their own size (the tracker's low-res mask size, 288 x 288 for SAM 3); pointers are float16 bytes.
`encode_snapshot` keeps a snapshot under `MAX_SNAPSHOT_BYTES` (64 KiB): if the masks do not fit at
full size it halves their resolution until they do (docs/engine.md, "Durable streams").
`decode_snapshot` raises `SnapshotError`, and nothing else, for any bad or foreign payload.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from protocols import rle as _rle
from protocols.errors import ProtocolError
from protocols.events import ConceptInfo, Exemplar, Thresholds
from protocols.rle import Rle

SNAPSHOT_KIND = "sam3.snapshot"
SNAPSHOT_VERSION = 1
MAX_SNAPSHOT_BYTES = 64 * 1024
MIN_MASK_SIDE = 16  # masks are not halved below this; a snapshot still too big is refused


class SnapshotError(ProtocolError):
    """A payload that is not a stream snapshot this engine can read, or one that cannot fit."""


@dataclass(frozen=True, slots=True)
class SnapshotObject:
    """One live object. `box_xyxy` is in the pixels of `mask` (the low-res grid), not the frame."""

    object_id: int
    concept_id: int | None  # None: added by a click or a box
    score: float
    box_xyxy: tuple[float, float, float, float]
    mask: Rle  # its last visible low-res mask
    pointer: bytes  # its latest object pointer, float16 little-endian; b"" if none
    last_seen_s: float  # stream clock (tracker seconds) when it was last visible
    published: bool  # subscribers have seen it (an ObjectStarted was sent)
    confirmed: bool  # past its hot-start window

    def mask_array(self) -> npt.NDArray[np.bool_]:
        return _rle.decode(self.mask)

    def pointer_array(self) -> npt.NDArray[np.float16]:
        return np.frombuffer(self.pointer, dtype="<f2").copy()


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """One stream's durable state at `taken_ns` (wall clock) by `owner`."""

    stream_id: str
    owner: str
    taken_ns: int
    next_seq: int  # the seq of the next FrameResult the stream publishes
    frame_index: int  # frames the tracker had processed
    clock_s: float  # the tracker's stream clock
    next_object_id: int  # IDs below this were handed out: never to be used again
    next_concept_id: int
    concepts: tuple[ConceptInfo, ...] = ()
    objects: tuple[SnapshotObject, ...] = ()


def pointer_bytes(pointer: npt.ArrayLike) -> bytes:
    """An object pointer (any float vector) as the float16 bytes a snapshot stores."""
    return np.asarray(pointer, dtype="<f2").reshape(-1).tobytes()


# --- encoding ---------------------------------------------------------------------------------


def encode_snapshot(snapshot: StreamSnapshot, *, max_bytes: int = MAX_SNAPSHOT_BYTES) -> bytes:
    """The snapshot's bytes, at most `max_bytes`: masks are halved in resolution (boxes with them)
    until it fits. Raises SnapshotError if it does not fit even at `MIN_MASK_SIDE`."""
    while True:
        data = msgpack.packb(_to_wire(snapshot), use_bin_type=True)
        if len(data) <= max_bytes:
            return data  # type: ignore[no-any-return]
        sides = [max(o.mask.height, o.mask.width) for o in snapshot.objects]
        if not sides or max(sides) // 2 < MIN_MASK_SIDE:
            raise SnapshotError(
                f"the snapshot of stream {snapshot.stream_id!r} ({len(snapshot.objects)} objects)"
                f" is {len(data)} bytes, over the limit of {max_bytes} bytes even with"
                f" {MIN_MASK_SIDE}-pixel masks: track fewer objects"
            )
        snapshot = replace(snapshot, objects=tuple(_halved(o) for o in snapshot.objects))


def _halved(obj: SnapshotObject) -> SnapshotObject:
    """The object with its mask at half resolution (a pixel is set if any of its 2 x 2 was)."""
    mask = obj.mask_array()
    h, w = mask.shape
    if max(h, w) // 2 < MIN_MASK_SIDE:
        return obj
    padded = np.zeros((h + h % 2, w + w % 2), dtype=bool)
    padded[:h, :w] = mask
    small = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).any(axis=(1, 3))
    box = tuple(v / 2 for v in obj.box_xyxy)
    return replace(obj, mask=_rle.encode(small), box_xyxy=box)  # type: ignore[arg-type]


def _to_wire(s: StreamSnapshot) -> dict[str, Any]:
    return {
        "k": SNAPSHOT_KIND,
        "v": SNAPSHOT_VERSION,
        "s": s.stream_id,
        "own": s.owner,
        "at": s.taken_ns,
        "q": s.next_seq,
        "f": s.frame_index,
        "clk": s.clock_s,
        "nid": s.next_object_id,
        "ncid": s.next_concept_id,
        "cs": [
            {
                "id": c.concept_id,
                "text": c.text,
                "ex": [[list(e.box_xyxy), e.positive] for e in c.exemplars],
                "th": [c.thresholds.detection, c.thresholds.new_object],
            }
            for c in s.concepts
        ],
        "o": [
            {
                "id": o.object_id,
                "c": o.concept_id,
                "sc": o.score,
                "box": list(o.box_xyxy),
                "m": [o.mask.height, o.mask.width, o.mask.counts],
                "ptr": o.pointer,
                "seen": o.last_seen_s,
                "pub": o.published,
                "ok": o.confirmed,
            }
            for o in s.objects
        ],
    }


# --- decoding ---------------------------------------------------------------------------------


def decode_snapshot(data: bytes | bytearray | memoryview) -> StreamSnapshot:
    """The snapshot in `data`. Raises SnapshotError for anything that is not one (foreign bytes,
    another kind of message, a newer version, a missing or mistyped field)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SnapshotError(f"a snapshot must be bytes, got {type(data).__name__}")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack documents no closed set of errors
        raise SnapshotError(f"not a stream snapshot: not msgpack ({type(exc).__name__})") from None
    if not isinstance(body, dict) or body.get("k") != SNAPSHOT_KIND:
        raise SnapshotError(f"not a stream snapshot: no {SNAPSHOT_KIND!r} kind marker")
    version = body.get("v")
    if type(version) is not int or version < 1:
        raise SnapshotError(f"not a stream snapshot: bad version {version!r}")
    if version > SNAPSHOT_VERSION:
        raise SnapshotError(
            f"snapshot version {version} was written by a newer engine; this one reads up to"
            f" version {SNAPSHOT_VERSION}: upgrade it, or start the stream without its snapshot"
        )
    try:
        return _from_wire(body)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise SnapshotError(f"a malformed stream snapshot: {detail}") from None


def _from_wire(b: dict[str, Any]) -> StreamSnapshot:
    concepts = tuple(
        ConceptInfo(
            concept_id=_int(c["id"]),
            text=_opt(c["text"], str),
            exemplars=tuple(Exemplar(_box(box), _bool(pos)) for box, pos in c["ex"]),
            thresholds=Thresholds(_opt_float(c["th"][0]), _opt_float(c["th"][1])),
        )
        for c in _list(b["cs"])
    )
    objects = []
    for o in _list(b["o"]):
        height, width, counts = o["m"]
        mask = Rle((_int(height), _int(width)), _bytes(counts))
        _rle.decode(mask)  # a malformed RLE is a ProtocolError, re-raised below as ours
        objects.append(
            SnapshotObject(
                object_id=_int(o["id"]),
                concept_id=_opt(o["c"], int),
                score=_float(o["sc"]),
                box_xyxy=_box(o["box"]),
                mask=mask,
                pointer=_bytes(o["ptr"]),
                last_seen_s=_float(o["seen"]),
                published=_bool(o["pub"]),
                confirmed=_bool(o["ok"]),
            )
        )
    return StreamSnapshot(
        stream_id=_opt(b["s"], str) or "",
        owner=_opt(b["own"], str) or "",
        taken_ns=_int(b["at"]),
        next_seq=_int(b["q"]),
        frame_index=_int(b["f"]),
        clock_s=_float(b["clk"]),
        next_object_id=_int(b["nid"]),
        next_concept_id=_int(b["ncid"]),
        concepts=concepts,
        objects=tuple(objects),
    )


def _int(v: Any) -> int:
    if type(v) is not int:
        raise TypeError(f"expected an int, got {type(v).__name__}")
    return v


def _float(v: Any) -> float:
    if type(v) not in (int, float):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise TypeError(f"expected a bool, got {type(v).__name__}")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        raise TypeError(f"expected bytes, got {type(v).__name__}")
    return v


def _list(v: Any) -> list[Any]:
    if type(v) is not list:
        raise TypeError(f"expected an array, got {type(v).__name__}")
    return v


def _opt(v: Any, kind: type) -> Any:
    if v is not None and type(v) is not kind:
        raise TypeError(f"expected {kind.__name__} or nil, got {type(v).__name__}")
    return v


def _opt_float(v: Any) -> float | None:
    return None if v is None else _float(v)


def _box(v: Any) -> tuple[float, float, float, float]:
    values = _list(v)
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers, got {len(values)}")
    x0, y0, x1, y1 = (_float(x) for x in values)
    return (x0, y0, x1, y1)


__all__ = [
    "MAX_SNAPSHOT_BYTES",
    "SNAPSHOT_VERSION",
    "SnapshotError",
    "SnapshotObject",
    "StreamSnapshot",
    "decode_snapshot",
    "encode_snapshot",
    "pointer_bytes",
]
