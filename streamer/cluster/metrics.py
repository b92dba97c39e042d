"""Prometheus series of a cluster, per worker and per stream, from the controller's last poll.

    streamer_cluster_worker_up{worker}                      1 alive, 0 down
    streamer_cluster_worker_draining{worker}
    streamer_cluster_worker_streams{worker}                 streams placed on it
    streamer_cluster_worker_load{worker}                    object-frames/s, measured
    streamer_cluster_worker_capacity{worker}                object-frames/s
    streamer_cluster_worker_deaths{worker}                  deaths seen (each re-placed its streams)
    streamer_cluster_stream_fps{stream,worker,direction}    in / out
    streamer_cluster_stream_objects{stream,worker}
    streamer_cluster_stream_latency_ms{stream,worker,quantile}   0.5 / 0.99
    streamer_cluster_stream_frames{stream,worker,direction}
    streamer_cluster_stream_dropped_frames{stream,worker}
    streamer_cluster_failovers / _moves                     streams re-placed / moved by drains
    streamer_cluster_refused{limit}                         streams refused, by limit
    streamer_cluster_relay_events{outcome}                  relayed, dropped (slow), undecodable

Gauges are rebuilt at each scrape, so a removed stream or worker leaves no stale series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from streamer.cluster.controller import Controller
from streamer.cluster.relay import Relay


class ClusterMetrics:
    def __init__(self, controller: Controller, relay: Relay) -> None:
        self._controller = controller
        self._relay = relay

    def render(self) -> bytes:
        r = CollectorRegistry()

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"streamer_cluster_{name}", doc, list(labels), registry=r)

        up = gauge("worker_up", "1 while the worker answers", ("worker",))
        draining = gauge("worker_draining", "1 while the worker is drained", ("worker",))
        streams = gauge("worker_streams", "Streams placed on the worker", ("worker",))
        load = gauge("worker_load", "Measured load, object-frames/s", ("worker",))
        capacity = gauge("worker_capacity", "Capacity, object-frames/s", ("worker",))
        deaths = gauge("worker_deaths", "Deaths seen", ("worker",))
        c = self._controller
        for worker, seen in zip(c.workers.values(), c.loads(), strict=True):
            up.labels(worker.name).set(int(worker.alive))
            draining.labels(worker.name).set(int(worker.draining))
            streams.labels(worker.name).set(seen.streams)
            load.labels(worker.name).set(seen.load)
            capacity.labels(worker.name).set(seen.capacity)
            deaths.labels(worker.name).set(worker.deaths)
        fps = gauge("stream_fps", "Rolling frame rate", ("stream", "worker", "direction"))
        objects = gauge("stream_objects", "Objects on the last frame", ("stream", "worker"))
        latency = gauge("stream_latency_ms", "End-to-end latency", ("stream", "worker", "quantile"))
        frames = gauge("stream_frames", "Frames in and out", ("stream", "worker", "direction"))
        drops = gauge("stream_dropped_frames", "Frames dropped", ("stream", "worker"))
        for stream_id, wanted in c.streams.items():
            report, where = wanted.report, wanted.worker or ""
            if report is None:
                continue
            fps.labels(stream_id, where, "in").set(report.fps_in)
            fps.labels(stream_id, where, "out").set(report.fps_out)
            objects.labels(stream_id, where).set(len(report.objects))
            latency.labels(stream_id, where, "0.5").set(report.latency_ms_p50)
            latency.labels(stream_id, where, "0.99").set(report.latency_ms_p99)
            frames.labels(stream_id, where, "in").set(report.frames_in)
            frames.labels(stream_id, where, "out").set(report.frames_out)
            drops.labels(stream_id, where).set(sum(report.drops.values()))
        gauge("failovers", "Streams re-placed after their worker died").set(c.failovers)
        gauge("moves", "Streams moved off draining workers").set(c.moves)
        refused = gauge("refused", "Streams refused, by limit", ("limit",))
        for limit, count in c.refused.items():
            refused.labels(limit).set(count)
        relay = gauge("relay_events", "Events relayed from NATS", ("outcome",))
        relay.labels("relayed").set(self._relay.relayed)
        relay.labels("dropped").set(self._relay.dropped)
        relay.labels("undecodable").set(self._relay.undecodable)
        return generate_latest(r)
