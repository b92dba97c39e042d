"""Where the model meets the wire: tracker results -> protocol events -> encoded envelopes.

This is where model results become wire events (README, "Architecture"). One `EventBuilder` per
stream turns a `FrameTrack` into, in this order,

    ObjectStarted*  (objects first published on this frame)
    FrameResult     (every processed frame, also without objects; masks as COCO RLE)
    ObjectEnded*    (objects that ended on this frame)

so a subscriber always sees an object's start before its first mask and its end after its last.
Each event is encoded once here; every subscriber shares the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from model.types import Concept, FrameTrack, ObjectEndedEvent, TrackedObject
from model.types import EndReason as ModelEndReason
from model.types import ObjectState as ModelObjectState
from protocols import events as ev
from protocols import rle
from protocols.codec import encode
from streamer.metrics import StreamStats
from streamer.sinks.fanout import Envelope
from streamer.types import Frame, SourceInfo

ENGINE_VERSION = "0.1.0"
CAPABILITIES = ("redaction", "object_prompts", "concept_edits")

_STATE = {
    ModelObjectState.TENTATIVE: ev.ObjectState.TENTATIVE,
    ModelObjectState.CONFIRMED: ev.ObjectState.CONFIRMED,
}
_REASON = {
    ModelEndReason.LOST: ev.EndReason.LOST,
    ModelEndReason.REMOVED: ev.EndReason.REMOVED,
    ModelEndReason.SUPPRESSED: ev.EndReason.SUPPRESSED,
    ModelEndReason.STREAM_ENDED: ev.EndReason.STREAM_ENDED,
}
_ERROR_CODES = {
    "source": ev.ErrorCode.SOURCE_FAILED,
    "model": ev.ErrorCode.MODEL_FAILED,
    "bad_request": ev.ErrorCode.BAD_REQUEST,
    "not_found": ev.ErrorCode.NOT_FOUND,
    "internal": ev.ErrorCode.INTERNAL,
    "overloaded": ev.ErrorCode.OVERLOADED,  # a limit held: e.g. a concept at its object cap
}


def envelope(event: ev.Event, stream_id: str | None) -> Envelope:
    return Envelope(stream_id, event, encode(event))


def hello() -> Envelope:
    """The first message of every connection."""
    return envelope(ev.Hello(ev.PROTOCOL_VERSION, ENGINE_VERSION, CAPABILITIES), None)


class EventBuilder:
    """Builds one stream's events (see module docstring)."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.last_seq = -1  # seq of the last published frame (for end-of-stream ObjectEnded)

    def stream_started(self, info: SourceInfo) -> Envelope:
        event = ev.StreamStarted(
            self.stream_id, info.width, info.height, info.fps, info.time_base, info.url
        )
        return envelope(event, self.stream_id)

    def concepts_changed(self, concepts: Mapping[int, Concept]) -> Envelope:
        infos = tuple(_concept_info(concept_id, c) for concept_id, c in sorted(concepts.items()))
        return envelope(ev.ConceptsChanged(self.stream_id, infos), self.stream_id)

    def frame(self, frame: Frame, track: FrameTrack, published_ns: int) -> list[Envelope]:
        self.last_seq = frame.seq
        out = [
            envelope(
                ev.ObjectStarted(self.stream_id, s.object_id, s.concept_id, frame.seq),
                self.stream_id,
            )
            for s in track.started
        ]
        result = ev.FrameResult(
            stream_id=self.stream_id,
            seq=frame.seq,
            pts=frame.pts,
            time_base=frame.time_base,
            captured_ns=frame.captured_ns,
            published_ns=published_ns,
            width=frame.width,
            height=frame.height,
            objects=tuple(_object_mask(obj, frame) for obj in track.objects),
        )
        out.append(envelope(result, self.stream_id))
        out += self.ended(track.ended)
        return out

    def ended(self, ended: Sequence[ObjectEndedEvent]) -> list[Envelope]:
        seq = max(self.last_seq, 0)
        return [
            envelope(
                ev.ObjectEnded(self.stream_id, e.object_id, seq, _REASON[e.reason]), self.stream_id
            )
            for e in ended
        ]

    def status(self, state: str, stats: StreamStats, subscriber_dropped: int) -> Envelope:
        """StreamStatus; `subscriber_dropped` is the receiving subscriber's own lost events."""
        drops = ev.DropCounts(
            superseded=stats.drops["superseded"],
            queue_full=stats.drops["queue_full"],
            stale=stats.drops["stale"],
            decode_error=stats.drops["decode_error"],
        )
        event = ev.StreamStatus(
            stream_id=self.stream_id,
            state=ev.StreamState[state.upper()],
            fps_in=round(stats.fps_in.per_second(), 2),
            fps_out=round(stats.fps_out.per_second(), 2),
            dropped=drops.superseded + drops.queue_full + drops.stale + drops.decode_error,
            latency_ms_p50=round(stats.latency_ms.percentile(50), 2),
            latency_ms_p99=round(stats.latency_ms.percentile(99), 2),
            drops=drops,
            subscriber_dropped=subscriber_dropped,
        )
        return envelope(event, self.stream_id)

    def error(self, code: str, message: str) -> Envelope:
        return envelope(ev.Error(_ERROR_CODES[code], message, self.stream_id), self.stream_id)


def _object_mask(obj: TrackedObject, frame: Frame) -> ev.ObjectMask:
    mask = obj.mask  # H x W bool at the frame's size
    if mask.shape != (frame.height, frame.width):
        raise ValueError(
            f"object {obj.object_id}: mask {mask.shape} does not match frame "
            f"{frame.height}x{frame.width}"
        )
    return ev.ObjectMask(
        object_id=obj.object_id,
        concept_id=obj.concept_id,
        score=float(obj.score),
        box_xyxy=tuple(float(v) for v in obj.box_xyxy),  # type: ignore[arg-type]
        area=int(np.count_nonzero(mask)),
        rle=rle.encode(mask),
        state=_STATE[obj.state],
    )


def _concept_info(concept_id: int, concept: Concept) -> ev.ConceptInfo:
    return ev.ConceptInfo(
        concept_id=concept_id,
        text=concept.text,
        exemplars=tuple(ev.Exemplar(b.xyxy, b.positive) for b in concept.exemplars),
        thresholds=ev.Thresholds(concept.thresholds.detection, concept.thresholds.new_object),
    )
