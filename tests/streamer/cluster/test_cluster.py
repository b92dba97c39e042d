"""Cluster mode with real parts: a local Ray cluster, worker actors in their own processes running
the engine, a nats-server on loopback, the HTTP API and its WebSockets. The tracker is the
scripted one (tests/fakes.py) on a real synthetic:// live source; each test starts its workers."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from typing import Any

import pytest
import ray
from aiohttp.test_utils import TestClient

from protocols.events import FrameResult, StreamStarted
from streamer.cluster.capacity import Capacity
from streamer.cluster.host import ClusterHost
from streamer.engine import EngineConfig
from tests.streamer.cluster.conftest import CAMERA, Events, cluster_api, tiny, until

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("ray_cluster")]

# The engine feature that keeps object IDs across a re-placement (a per-stream state store);
# the controller passes its NATS URL to every worker's engine as `state_url` when it exists.
HAS_STATE_STORE = "state_url" in {f.name for f in dataclasses.fields(EngineConfig)}


async def post_stream(client: TestClient, stream_id: str) -> Any:
    body = {"source": CAMERA, "stream_id": stream_id, "concepts": [{"text": "red"}]}
    response = await client.post("/v1/streams", json=body)
    return response.status, await response.json()


async def where(client: TestClient, stream_id: str) -> str | None:
    response = await client.get(f"/v1/streams/{stream_id}")
    assert response.status == 200
    worker: str | None = (await response.json())["worker"]
    return worker


def object_ids(events: Events, start: int = 0) -> list[int]:
    return [
        o.object_id for e in events.events[start:] if isinstance(e, FrameResult) for o in e.objects
    ]


async def test_streams_spread_over_workers_and_a_full_cluster_refuses_naming_the_limit(
    nats_url: str,
) -> None:
    async with cluster_api(tiny(nats_url)) as (host, client):
        status, body = await post_stream(client, "a")
        assert status == 201 and body["worker"] in ("w0", "w1") and body["stream_id"] == "a"
        status, body = await post_stream(client, "b")
        assert status == 201 and body["worker"] is not None
        placed = {await where(client, "a"), await where(client, "b")}
        assert placed == {"w0", "w1"}  # each worker has room for one guessed stream

        status, body = await post_stream(client, "c")
        assert status == 503 and body["status"] == 503
        assert "no worker has room for stream 'c'" in body["error"]
        assert "w0 carries" in body["error"] and "(capacity)" in body["error"]
        assert (await client.get("/v1/streams/c")).status == 404  # nothing left behind

        status, body = await post_stream(client, "a")
        assert status == 409 and "already exists" in body["error"]

        # measured load replaces the guess once the streams have run: 15 fps x (4 + 1 object)
        await until(lambda: all(r.running and r.fps_in > 10 and r.objects for r in
                                (host.controller.report("a"), host.controller.report("b")) if r),
                    "both streams measured")  # fmt: skip
        workers = (await (await client.get("/v1/workers")).json())["workers"]
        assert [w["worker"] for w in workers] == ["w0", "w1"]
        assert all(w["alive"] and len(w["streams"]) == 1 for w in workers)

        stream = await (await client.get("/v1/streams/a")).json()
        assert stream["state"] == "live" and stream["objects"] == 1 and stream["fps_in"] > 0
        assert [c["text"] for c in stream["concepts"]] == ["red"]

        metrics = await (await client.get("/metrics")).text()
        for worker in ("w0", "w1"):
            assert f'streamer_cluster_worker_up{{worker="{worker}"}} 1.0' in metrics
        assert 'streamer_cluster_stream_objects{stream="a",worker="' in metrics
        assert 'streamer_cluster_refused{limit="capacity"} 1.0' in metrics

        assert (await client.delete("/v1/streams/b")).status == 204
        status, body = await post_stream(client, "c")  # the freed worker takes it
        assert (
            status == 201 and body["worker"] == placed.difference({await where(client, "a")}).pop()
        )


async def test_draining_a_worker_moves_its_stream_and_the_events_go_on(nats_url: str) -> None:
    async with cluster_api(tiny(nats_url)) as (host, client), asyncio.TaskGroup() as tg:
        assert (await post_stream(client, "a"))[0] == 201
        first = await where(client, "a")
        other = "w1" if first == "w0" else "w0"
        events = Events()
        reader = tg.create_task(events.read(client, "a"))  # connected once, before the move
        await until(lambda: len(events.of(FrameResult)) >= 3, "frames before the drain")

        starts = len(events.of(StreamStarted))  # the first run's may predate the subscriber
        response = await client.post(f"/v1/workers/{first}/drain")
        assert response.status == 200
        assert await response.json() == {"moved": ["a"], "stuck": []}
        assert await where(client, "a") == other
        await until(lambda: len(events.of(StreamStarted)) > starts, "the moved stream starting")
        index = max(i for i, e in enumerate(events.events) if isinstance(e, StreamStarted))
        await until(lambda: sum(isinstance(e, FrameResult) for e in events.events[index:]) >= 3,
                    "the moved stream's frames on the same WebSocket")  # fmt: skip

        # the drained worker takes nothing new; the other one is full: the refusal says both
        status, body = await post_stream(client, "b")
        assert status == 503
        assert f"{first} is draining" in body["error"] and f"{other} carries" in body["error"]
        workers = {
            w["worker"]: w for w in (await (await client.get("/v1/workers")).json())["workers"]
        }
        assert workers[first]["draining"] and workers[first]["streams"] == []
        assert workers[other]["streams"] == ["a"]

        assert (await client.post(f"/v1/workers/{first}/undrain")).status == 200
        status, body = await post_stream(client, "b")
        assert status == 201 and body["worker"] == first
        assert (await client.post("/v1/workers/nope/drain")).status == 404
        reader.cancel()


async def _kill_and_follow(
    host: ClusterHost, client: TestClient, events: Events
) -> tuple[str, int]:
    """Kill the worker running stream a (Ray restarts the actor); wait until a runs elsewhere and
    its new run's frames reach the subscriber. Returns the new worker and the first event index
    of the new run."""
    victim = await where(client, "a")
    assert victim is not None
    pid = (await host.controller.workers[victim].handle.status.remote())["pid"]
    starts = len(events.of(StreamStarted))
    ray.kill(host.controller.workers[victim].handle, no_restart=False)
    await until(lambda: len(events.of(StreamStarted)) > starts, "the stream restarting elsewhere")
    index = max(i for i, e in enumerate(events.events) if isinstance(e, StreamStarted))
    await until(lambda: any(isinstance(e, FrameResult) and e.objects for e in events.events[index:]),
                "frames with objects from the new run")  # fmt: skip
    now = await where(client, "a")
    assert now is not None and now != victim
    assert host.controller.workers[victim].deaths == 1
    assert (await host.controller.workers[now].handle.status.remote())["pid"] != pid
    return now, index


async def test_a_killed_worker_s_stream_is_re_placed_and_its_events_go_on(nats_url: str) -> None:
    async with cluster_api(tiny(nats_url)) as (host, client), asyncio.TaskGroup() as tg:
        assert (await post_stream(client, "a"))[0] == 201
        events = Events()
        reader = tg.create_task(events.read(client, "a"))  # connected once, before the kill
        await until(lambda: 1 in object_ids(events), "object 1 before the kill")

        # make the object in view carry id 2: end object 1 (remove its concept), prompt again
        concept = (await (await client.get("/v1/streams/a/concepts")).json())["concepts"][0]
        assert (
            await client.delete(f"/v1/streams/a/concepts/{concept['concept_id']}")
        ).status == 204
        response = await client.post("/v1/streams/a/concepts", json={"text": "red"})
        assert response.status == 201
        await until(lambda: 2 in object_ids(events), "object 2 before the kill")

        now, index = await _kill_and_follow(host, client, events)
        after = object_ids(events, index)
        # the re-placed stream runs with the concepts it had (the prompt added through the API)
        stream = await (await client.get("/v1/streams/a")).json()
        assert [c["text"] for c in stream["concepts"]] == ["red"] and stream["worker"] == now
        if HAS_STATE_STORE:  # the engine resumed from its snapshot: the object keeps id 2
            assert after[0] == 2 and 1 not in after
        else:  # no state store on this engine: the new run numbers its objects afresh
            assert after[0] == 1
        metrics = await (await client.get("/metrics")).text()
        assert "streamer_cluster_failovers 1.0" in metrics
        reader.cancel()


def test_joining_a_ray_cluster_needs_a_nats_every_node_reaches() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "streamer", "serve", "--ray-address", "127.0.0.1:1", "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "--ray-address needs --nats URL: a NATS server every Ray node can reach"
    )


async def test_sigkill_of_a_worker_process_re_places_both_of_its_streams(nats_url: str) -> None:
    roomy = Capacity(1000.0, 4.0, max_streams=4, origin="test")
    async with cluster_api(tiny(nats_url, capacity=roomy)) as (host, client):
        for stream_id in ("a", "b", "c"):
            assert (await post_stream(client, stream_id))[0] == 201
        placed = {sid: await where(client, sid) for sid in ("a", "b", "c")}
        victim = placed["a"]
        assert victim is not None and placed["c"] == victim and placed["b"] != victim
        survivor = placed["b"]
        handle = host.controller.workers[victim].handle
        pid = (await handle.status.remote())["pid"]
        frames = {sid: r.frames_out for sid in ("a", "c") if (r := host.controller.report(sid))}
        os.kill(pid, signal.SIGKILL)  # the process, not the actor API: as a crash or OOM kill would
        await until(lambda: all(host.controller.worker_of(s) == survivor for s in ("a", "c")),
                    "both streams on the surviving worker")  # fmt: skip
        # they run there: fresh sessions whose frames count up again
        await until(lambda: all((r := host.controller.report(s)) is not None and r.state == "live"
                                and r.frames_out >= 3 for s in ("a", "c")),
                    "frames of both re-placed streams")  # fmt: skip
        assert host.controller.workers[victim].deaths == 1 and host.controller.failovers == 2
        assert frames  # both had run on the victim before the kill
        assert await where(client, "b") == survivor
