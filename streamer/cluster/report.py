"""One stream as a worker reports it to the controller: plain values, taken at one moment.

A worker sends a `StreamReport` per stream with every status answer; the API process reads
streams from the last ones (streamer/cluster/remote.py), so a GET never waits on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model.types import Concept
from streamer.session import ObjectInfo, Session
from streamer.types import SourceInfo


@dataclass(frozen=True)
class StreamReport:
    stream_id: str
    state: str  # a streamer.session.StreamState value
    error: str | None = None
    source: SourceInfo | None = None
    frames_in: int = 0
    frames_out: int = 0
    fps_in: float = 0.0
    fps_out: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p99: float = 0.0
    drops: dict[str, int] = field(default_factory=dict)
    concepts: dict[int, Concept] = field(default_factory=dict)
    objects: dict[int, ObjectInfo] = field(default_factory=dict)
    age_s: float = 0.0  # seconds since the worker started the stream

    @classmethod
    def of(cls, session: Session, age_s: float) -> StreamReport:
        stats = session.stats
        return cls(
            stream_id=session.stream_id, state=session.state.value,
            error=str(session.error) if session.error is not None else None,
            source=session.source.info, frames_in=stats.frames_in, frames_out=stats.frames_out,
            fps_in=stats.fps_in.per_second(), fps_out=stats.fps_out.per_second(),
            latency_ms_p50=stats.latency_ms.percentile(50),
            latency_ms_p99=stats.latency_ms.percentile(99),
            drops=dict(stats.drops), concepts=dict(session.concepts),
            objects=dict(session.objects), age_s=age_s,
        )  # fmt: skip

    @property
    def running(self) -> bool:
        """Still wanted on a worker: not ended and not failed."""
        return self.state not in ("ended", "failed")
