"""What the HTTP API needs of whatever runs the streams: the local Engine, or a cluster of them.

`StreamHost` is the API's view of a stream runner (streamer/engine.py implements it in-process,
streamer/cluster/host.py across Ray workers); `StreamView` is its view of one stream, which a
`Session` is and a cluster's remote stream mirrors. Reading a view never waits: a cluster answers
from the status its workers last reported. A host refuses a stream it has no room for with
`HostFull`, whose message names the limit (the API answers 503).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from model.types import BoxPrompt, Concept, PointPrompt
from streamer.engine import StreamSpec
from streamer.session import ObjectInfo, StreamState
from streamer.sinks.fanout import Hub
from streamer.types import SourceInfo


class HostFull(Exception):
    """No room for another stream; the message names the limit that refused it."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit  # e.g. "capacity", "max_streams", "no_workers"


class RateView(Protocol):
    def per_second(self) -> float: ...


class PercentileView(Protocol):
    def percentile(self, q: float) -> float: ...


class StatsView(Protocol):
    @property
    def frames_in(self) -> int: ...
    @property
    def frames_out(self) -> int: ...
    @property
    def fps_in(self) -> RateView: ...
    @property
    def fps_out(self) -> RateView: ...
    @property
    def latency_ms(self) -> PercentileView: ...
    @property
    def drops(self) -> Mapping[str, int]: ...


class SourceView(Protocol):
    @property
    def info(self) -> SourceInfo | None: ...


class StreamView(Protocol):
    """One stream as the API reads and edits it."""

    @property
    def stream_id(self) -> str: ...
    @property
    def state(self) -> StreamState: ...
    @property
    def error(self) -> BaseException | None: ...
    @property
    def source(self) -> SourceView: ...
    @property
    def stats(self) -> StatsView: ...
    @property
    def concepts(self) -> Mapping[int, Concept]: ...
    @property
    def objects(self) -> Mapping[int, ObjectInfo]: ...

    async def add_concept(self, concept: Concept) -> int: ...
    async def remove_concept(self, concept_id: int) -> None: ...
    async def add_object(
        self, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> int: ...
    async def refine_object(
        self, object_id: int, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> None: ...
    async def remove_object(self, object_id: int) -> None: ...


@runtime_checkable
class Placed(Protocol):
    """A stream that runs somewhere else: `worker` names where (None while it is being placed)."""

    @property
    def worker(self) -> str | None: ...


class DeviceConfig(Protocol):
    @property
    def device(self) -> str: ...


class MetricsView(Protocol):
    def render(self) -> bytes: ...


class StreamHost(Protocol):
    """Runs streams and publishes their events into `hub` (the API's WebSockets read it)."""

    @property
    def hub(self) -> Hub: ...
    @property
    def config(self) -> DeviceConfig: ...
    @property
    def metrics(self) -> MetricsView: ...
    @property
    def sessions(self) -> Mapping[str, StreamView]: ...

    def get(self, stream_id: str) -> StreamView: ...
    async def add_stream(self, spec: StreamSpec) -> StreamView: ...
    async def remove_stream(self, stream_id: str) -> None: ...
