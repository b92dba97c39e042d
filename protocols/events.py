"""The wire schema: every event a subscriber can receive, as frozen dataclasses.

Rules (docs/events.md, "Versioning rule") — the schema is a contract that only grows:
* Each event has a type tag (`TAG`) that is never reused; each field a short wire key (`wire()`),
  never reused nor retyped. Fields added later are appended with a default, so an older sender's
  message (which lacks them) still decodes; a newer sender's extra fields are ignored.
* Enums are ints on the wire whose zero value is UNKNOWN; a value this version does not know
  decodes as UNKNOWN instead of failing.
* Fields are deprecated (documented, still sent), never deleted.
* Ask capability questions with the `supports_*` helpers, not with raw version comparisons.
* `object_id` is an int that is never reused within a stream.

Version history:
* 1 — Hello, StreamStarted, FrameResult (ObjectMask + Rle), ObjectStarted, ObjectEnded,
  ConceptsChanged, StreamStatus (with DropCounts and subscriber_dropped), Error.

Units: pixels are those of the source frame (width x height); boxes are xyxy floats; `pts` counts
`time_base` seconds; `*_ns` are wall-clock nanoseconds since the Unix epoch (time.time_ns()).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from protocols import rle as _rle
from protocols.credentials import redact_url
from protocols.rle import Rle

PROTOCOL_VERSION = 1


def wire(key: str, default: Any = MISSING) -> Any:
    """Declare a field's short wire key (and, for fields added after version 1, its default)."""
    return field(default=default, metadata={"wire": key})


def supports_object_lifecycle(version: int) -> bool:
    """ObjectStarted / ObjectEnded events are sent."""
    return version >= 1


def supports_concepts_changed(version: int) -> bool:
    """ConceptsChanged events are sent when a stream's concepts change."""
    return version >= 1


def supports_drop_causes(version: int) -> bool:
    """StreamStatus carries `drops` by cause and `subscriber_dropped`."""
    return version >= 1


# --- enums: ints on the wire, 0 = unknown -----------------------------------------------------


class ObjectState(enum.IntEnum):
    UNKNOWN = 0
    TENTATIVE = 1  # inside its hot-start window: may still be removed
    CONFIRMED = 2


class EndReason(enum.IntEnum):
    UNKNOWN = 0
    LOST = 1  # not seen for longer than the tracker tolerates
    REMOVED = 2  # removed by a user or by the hot-start rules
    SUPPRESSED = 3  # a duplicate of (or hidden by) an older object
    STREAM_ENDED = 4  # the stream ended while the object was alive


class StreamState(enum.IntEnum):
    UNKNOWN = 0
    CONNECTING = 1
    LIVE = 2
    RECONNECTING = 3
    GAP = 4  # frames stopped arriving; tracks are kept for a while
    ENDED = 5  # the source ended normally
    FAILED = 6  # the source failed for good (see the Error event)


class ErrorCode(enum.IntEnum):
    UNKNOWN = 0
    BAD_REQUEST = 1  # a request or message the engine could not accept
    NOT_FOUND = 2  # no such stream, concept or object
    UNAUTHORIZED = 3
    SOURCE_FAILED = 4  # the video source could not be opened or read
    MODEL_FAILED = 5
    OVERLOADED = 6  # the engine is dropping work
    INTERNAL = 7


# --- connection ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on every connection."""

    TAG: ClassVar[str] = "hello"
    protocol_version: int = wire("pv")
    engine_version: str = wire("ev")
    capabilities: tuple[str, ...] = wire("caps")  # optional engine features, e.g. "redaction"


@dataclass(frozen=True, slots=True)
class Error:
    TAG: ClassVar[str] = "error"
    code: ErrorCode = wire("code")
    message: str = wire("msg")
    stream_id: str | None = wire("s")  # None: about the connection, not a stream


# --- streams ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """A stream's source is open. `source` never carries credentials (redacted on construction)."""

    TAG: ClassVar[str] = "stream_started"
    stream_id: str = wire("s")
    width: int = wire("w")
    height: int = wire("h")
    fps: float = wire("fps")  # nominal; 0.0 when the source does not say
    time_base: Fraction = wire("tb")  # seconds per pts unit; [num, den] on the wire
    source: str = wire("src")

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", redact_url(self.source))


@dataclass(frozen=True, slots=True)
class DropCounts:
    """Frames not processed, by cause; their sum is `StreamStatus.dropped`."""

    superseded: int = wire("sup", 0)  # replaced in the latest-frame slot by a newer frame
    queue_full: int = wire("full", 0)  # a bounded frame queue was full
    stale: int = wire("old", 0)  # older than the latency budget when their turn came
    decode_error: int = wire("dec", 0)  # could not be decoded


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """Periodic health of one stream. Rates per second, latency capture -> publish in ms."""

    TAG: ClassVar[str] = "stream_status"
    stream_id: str = wire("s")
    state: StreamState = wire("st")
    fps_in: float = wire("fin")
    fps_out: float = wire("fout")
    dropped: int = wire("drop")  # frames, since the stream started
    latency_ms_p50: float = wire("p50")
    latency_ms_p99: float = wire("p99")
    drops: DropCounts = wire("dc", DropCounts())
    subscriber_dropped: int = wire(
        "sub", 0
    )  # events this subscriber lost by being slow (its own queue)


# --- concepts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exemplar:
    """An exemplar box of a concept, xyxy pixels; a negative one shows what the concept is not."""

    box_xyxy: tuple[float, float, float, float] = wire("box")
    positive: bool = wire("pos")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score thresholds of a concept; None means the engine's default."""

    detection: float | None = wire("det")
    new_object: float | None = wire("new")


@dataclass(frozen=True, slots=True)
class ConceptInfo:
    concept_id: int = wire("id")
    text: str | None = wire("text")  # None for an exemplar-only concept
    exemplars: tuple[Exemplar, ...] = wire("ex")
    thresholds: Thresholds = wire("th")


@dataclass(frozen=True, slots=True)
class ConceptsChanged:
    """The full current set of a stream's concepts (sent on start and after every change)."""

    TAG: ClassVar[str] = "concepts_changed"
    stream_id: str = wire("s")
    concepts: tuple[ConceptInfo, ...] = wire("cs")


# --- frames and objects ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectMask:
    """One object on one frame. `rle` is COCO compressed RLE at the frame's size."""

    object_id: int = wire("id")
    concept_id: int | None = wire("c")  # None for objects added by a click or a box
    score: float = wire("sc")
    box_xyxy: tuple[float, float, float, float] = wire("box")
    area: int = wire("a")  # pixels in the mask
    rle: Rle = wire("rle")  # {"size": [h, w], "counts": bytes} on the wire
    state: ObjectState = wire("st")

    def mask(self) -> npt.NDArray[np.bool_]:
        """The (H, W) bool mask, decoded on demand. Raises ProtocolError for a malformed RLE."""
        return _rle.decode(self.rle)


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One per processed frame, also when it has no objects."""

    TAG: ClassVar[str] = "frame_result"
    stream_id: str = wire("s")
    seq: int = wire("q")  # frame counter of the stream, from 0, increasing (gaps = drops)
    pts: int | None = wire("pts")  # presentation time in time_base units; None if unknown
    time_base: Fraction = wire("tb")
    captured_ns: int = wire("cap")  # when the frame left the decoder
    published_ns: int = wire("pub")  # when this event was built
    width: int = wire("w")
    height: int = wire("h")
    objects: tuple[ObjectMask, ...] = wire("o")


@dataclass(frozen=True, slots=True)
class ObjectStarted:
    """An object was published for the first time, on frame `seq`."""

    TAG: ClassVar[str] = "object_started"
    stream_id: str = wire("s")
    object_id: int = wire("id")
    concept_id: int | None = wire("c")
    seq: int = wire("q")


@dataclass(frozen=True, slots=True)
class ObjectEnded:
    """An object will not appear again; `seq` is the frame on which that was decided."""

    TAG: ClassVar[str] = "object_ended"
    stream_id: str = wire("s")
    object_id: int = wire("id")
    seq: int = wire("q")
    reason: EndReason = wire("r")


# --- forward compatibility -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unknown:
    """An event whose tag this version does not know; `fields` are its raw wire fields."""

    type: str
    version: int
    fields: Mapping[str, Any]


KNOWN_EVENTS: tuple[type, ...] = (
    Hello,
    StreamStarted,
    FrameResult,
    ObjectStarted,
    ObjectEnded,
    ConceptsChanged,
    StreamStatus,
    Error,
)

Event = (
    Hello
    | StreamStarted
    | FrameResult
    | ObjectStarted
    | ObjectEnded
    | ConceptsChanged
    | StreamStatus
    | Error
    | Unknown
)
