"""What the engine measures, in two forms: live per-stream figures and Prometheus series.

`StreamStats` keeps the rolling figures a person or a subscriber reads (fps in/out, latency
p50/p99 over the last frames, drops by cause, objects): the terminal status line and the periodic
StreamStatus event come from it. Every update also feeds `Metrics`, the engine's own Prometheus
registry (one per engine, so several engines in one process, as in tests, never collide):

    streamer_stage_seconds{stream,stage}         histogram: decode, queue, model, publish, e2e
    streamer_frames_total{stream,direction}      in (taken from the source) / out (published)
    streamer_dropped_frames_total{stream,cause}  superseded, stale, redaction_late, ...
    streamer_fps{stream,direction}               rolling rate
    streamer_objects{stream}                     objects on the last published frame
    streamer_reconnects_total{stream}            source reconnects
    streamer_subscriber_dropped_events_total{stream}  events lost by slow subscribers
    streamer_capped_detections_total{stream,concept}  detections not tracked: an object cap was full
    streamer_batch_size                          frames per model call
    streamer_memory_bytes{kind}                  rss, cuda_allocated

A stream's series go with it (`forget_stream`, when the stream is removed), and a concept's with the
concept (`forget_concept`): a long-running engine does not collect the names of every stream it
ever ran.
"""

from __future__ import annotations

import collections
import resource
import time

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """The engine's Prometheus registry and its series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "streamer_stage_seconds", "Per-stage latency of one frame",
            ["stream", "stage"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.frames = Counter(
            "streamer_frames", "Frames in and out", ["stream", "direction"], registry=r
        )
        self.drops = Counter(
            "streamer_dropped_frames", "Frames dropped, by cause", ["stream", "cause"], registry=r
        )
        self.fps = Gauge("streamer_fps", "Rolling frame rate", ["stream", "direction"], registry=r)
        self.objects = Gauge(
            "streamer_objects", "Objects on the last frame", ["stream"], registry=r
        )
        self.reconnects = Counter(
            "streamer_reconnects", "Source reconnects", ["stream"], registry=r
        )
        self.subscriber_drops = Counter(
            "streamer_subscriber_dropped_events", "Events lost by slow subscribers", ["stream"],
            registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "streamer_batch_size", "Frames per model call", buckets=(1, 2, 4, 8, 16, 32), registry=r
        )
        self.memory = Gauge("streamer_memory_bytes", "Process memory", ["kind"], registry=r)
        self.capped = Counter(
            "streamer_capped_detections", "Detections not tracked because an object cap was full",
            ["stream", "concept"], registry=r,
        )  # fmt: skip
        # every series with a `stream` label: (metric, its label names), for forget_stream
        self._per_stream: list[tuple[MetricWrapperBase, tuple[str, ...]]] = [
            (self.stage_seconds, ("stream", "stage")),
            (self.frames, ("stream", "direction")),
            (self.drops, ("stream", "cause")),
            (self.fps, ("stream", "direction")),
            (self.objects, ("stream",)),
            (self.reconnects, ("stream",)),
            (self.subscriber_drops, ("stream",)),
            (self.capped, ("stream", "concept")),
        ]

    def forget_stream(self, stream_id: str) -> None:
        """Remove every series of `stream_id` (it was removed from the engine)."""
        for metric, names in self._per_stream:
            for labels in _label_values(metric, names):
                if labels[0] == stream_id:
                    metric.remove(*labels)

    def forget_concept(self, stream_id: str, concept_id: int) -> None:
        """Remove the series of one concept of a stream (the concept was deleted)."""
        labels = (stream_id, str(concept_id))
        if labels in _label_values(self.capped, ("stream", "concept")):
            self.capped.remove(*labels)

    def render(self) -> bytes:
        """Prometheus text exposition, with memory sampled now."""
        self.memory.labels("rss").set(_rss_bytes())
        cuda = _cuda_allocated_bytes()
        if cuda is not None:
            self.memory.labels("cuda_allocated").set(cuda)
        return generate_latest(self.registry)


class Rolling:
    """The last `size` samples (milliseconds) for percentiles."""

    def __init__(self, size: int = 512) -> None:
        self._samples: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self._samples.append(value)

    def percentile(self, q: float) -> float:
        if not self._samples:
            return 0.0
        return float(np.percentile(np.fromiter(self._samples, dtype=np.float64), q))


class Rate:
    """Events per second over the last `window_s` seconds."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)
        self._trim(self._times[-1])

    def per_second(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        return len(self._times) / self.window_s

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()


class StreamStats:
    """Rolling figures of one stream, mirrored into the Prometheus series as they change."""

    def __init__(self, stream_id: str, metrics: Metrics) -> None:
        self.stream_id = stream_id
        self._m = metrics
        self.frames_in = 0
        self.frames_out = 0
        self.objects = 0
        self.reconnects = 0
        self.latency_ms = Rolling()
        self.fps_in = Rate()
        self.fps_out = Rate()
        self.drops: collections.Counter[str] = collections.Counter()
        self.subscriber_drops = 0

    def frame_in(self, decode_s: float | None = None) -> None:
        self.frames_in += 1
        self.fps_in.tick()
        self._m.frames.labels(self.stream_id, "in").inc()
        if decode_s is not None:
            self.stage("decode", decode_s)

    def frame_out(self, e2e_s: float, objects: int, batch_size: int) -> None:
        self.frames_out += 1
        self.fps_out.tick()
        self.objects = objects
        self.latency_ms.add(e2e_s * 1e3)
        self._m.frames.labels(self.stream_id, "out").inc()
        self._m.objects.labels(self.stream_id).set(objects)
        self._m.batch_size.observe(batch_size)
        self.stage("e2e", e2e_s)

    def stage(self, stage: str, seconds: float) -> None:
        self._m.stage_seconds.labels(self.stream_id, stage).observe(seconds)

    def set_drops(self, cause: str, total: int) -> None:
        """Record the running total of drops for `cause` (sources of truth keep totals)."""
        delta = total - self.drops[cause]
        if delta > 0:
            self.drops[cause] = total
            self._m.drops.labels(self.stream_id, cause).inc(delta)

    def add_drops(self, cause: str, count: int = 1) -> None:
        self.set_drops(cause, self.drops[cause] + count)

    def reconnected(self) -> None:
        self.reconnects += 1
        self._m.reconnects.labels(self.stream_id).inc()

    def set_subscriber_drops(self, total: int) -> None:
        if total > self.subscriber_drops:
            self._m.subscriber_drops.labels(self.stream_id).inc(total - self.subscriber_drops)
            self.subscriber_drops = total

    def capped_detections(self, concept_id: int, count: int) -> None:
        self._m.capped.labels(self.stream_id, str(concept_id)).inc(count)

    def forget_concept(self, concept_id: int) -> None:
        self._m.forget_concept(self.stream_id, concept_id)

    def refresh_rates(self) -> None:
        self._m.fps.labels(self.stream_id, "in").set(self.fps_in.per_second())
        self._m.fps.labels(self.stream_id, "out").set(self.fps_out.per_second())

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())


def _label_values(metric: MetricWrapperBase, names: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The label values of every child series `metric` has now (read from its samples)."""
    found = set()
    for family in metric.collect():
        for sample in family.samples:
            if all(name in sample.labels for name in names):
                found.add(tuple(sample.labels[name] for name in names))
    return found


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:  # not Linux: peak RSS is the best portable figure
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cuda_allocated_bytes() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.memory_allocated())
