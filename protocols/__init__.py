"""The wire protocol: versioned msgpack events, COCO RLE masks, framing, logs and a subscriber SDK.

Depends on numpy and msgpack only (aiohttp / nats-py are imported lazily by `subscribe`), so a
client can decode events without torch. See docs/events.md for the schema.
"""

from protocols import rle
from protocols.codec import DEFAULT_MAX_SIZE, decode, encode
from protocols.credentials import redact_url
from protocols.errors import ProtocolError
from protocols.events import (
    KNOWN_EVENTS,
    PROTOCOL_VERSION,
    ConceptInfo,
    ConceptsChanged,
    DropCounts,
    EndReason,
    Error,
    ErrorCode,
    Event,
    Exemplar,
    FrameResult,
    Hello,
    ObjectEnded,
    ObjectMask,
    ObjectStarted,
    ObjectState,
    StreamStarted,
    StreamState,
    StreamStatus,
    Thresholds,
    Unknown,
    supports_concepts_changed,
    supports_drop_causes,
    supports_object_lifecycle,
)
from protocols.framing import FrameReader, frame, read_frame
from protocols.log import LogReader, LogWriter, read_log
from protocols.rle import Rle
from protocols.subscribe import Subscription, SubscriptionError, events_subject, subscribe

__all__ = [
    "DEFAULT_MAX_SIZE",
    "KNOWN_EVENTS",
    "PROTOCOL_VERSION",
    "ConceptInfo",
    "ConceptsChanged",
    "DropCounts",
    "EndReason",
    "Error",
    "ErrorCode",
    "Event",
    "Exemplar",
    "FrameReader",
    "FrameResult",
    "Hello",
    "LogReader",
    "LogWriter",
    "ObjectEnded",
    "ObjectMask",
    "ObjectStarted",
    "ObjectState",
    "ProtocolError",
    "Rle",
    "StreamStarted",
    "StreamState",
    "StreamStatus",
    "Subscription",
    "SubscriptionError",
    "Thresholds",
    "Unknown",
    "decode",
    "encode",
    "events_subject",
    "frame",
    "read_frame",
    "read_log",
    "redact_url",
    "rle",
    "subscribe",
    "supports_concepts_changed",
    "supports_drop_causes",
    "supports_object_lifecycle",
]
