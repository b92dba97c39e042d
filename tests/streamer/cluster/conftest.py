"""A real local Ray cluster (2 logical CPUs, on 127.0.0.1) and a real nats-server for the cluster
tests, each started once per module and stopped at its end; every test starts its own workers."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import ray
from aiohttp.test_utils import TestClient, TestServer

from protocols.codec import decode
from streamer.api import ApiConfig, create_app
from streamer.cluster.config import CLUSTER_CONFIGS, ClusterConfig
from streamer.cluster.host import ClusterHost
from streamer.cluster.routes import add_cluster_routes

SCRIPTED = "tests.fakes:FakeTracker"  # detects a colour; needs no torch, so workers start fast
CAMERA = "synthetic://64x48@15"  # a real live source: its first shape is red


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    assert Path(binary).exists(), "nats-server is not installed (scripts/bootstrap.sh dev)"
    port = free_port()
    store = tmp_path_factory.mktemp("js")
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "nats-server down"
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield
    finally:
        ray.shutdown()


def tiny(nats_url: str, **changes: Any) -> ClusterConfig:
    """The tiny cluster (2 workers, room for one guessed stream each) with the scripted tracker,
    in a namespace of its own so that no two tests share an actor name."""
    base = dataclasses.replace(
        CLUSTER_CONFIGS["tiny"], nats_url=nats_url, tracker=SCRIPTED,
        namespace=f"test-{uuid.uuid4().hex[:8]}", events_stream="TEST_CLUSTER",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


@asynccontextmanager
async def cluster_api(config: ClusterConfig) -> AsyncIterator[tuple[ClusterHost, TestClient]]:
    """The real API (as `streamer serve --cluster` builds it) over a ClusterHost, on loopback."""
    async with ClusterHost(config) as host:
        app = create_app(host, ApiConfig(webrtc=None))
        add_cluster_routes(app, host)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            yield host, client


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for `condition` (checked every 50 ms) or fail naming `what`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class Events:
    """A WebSocket subscriber of one stream: every decoded event, in order, as it arrives."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def read(self, client: TestClient, stream_id: str) -> None:
        async with client.ws_connect(f"/v1/streams/{stream_id}/events") as ws:
            async for message in ws:
                self.events.append(decode(message.data))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
