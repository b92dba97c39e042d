"""`streamer serve --cluster` / `--ray-address ADDR`: the API in front of Ray worker actors.

With `--cluster` a local Ray is started for this process (bound to 127.0.0.1, stopped at the
end), and a local nats-server unless `--nats URL` names one. With `--ray-address` the workers are
started on an existing cluster (`ray start --head` on one machine, `ray start --address` on the
others, docs/cluster.md), which then needs a NATS every node reaches: `--nats` is required.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import ray
from aiohttp import web

from protocols.credentials import redact_url
from streamer.api import ApiConfig, create_app
from streamer.cluster.capacity import Capacity
from streamer.cluster.config import ClusterConfig
from streamer.cluster.host import ClusterHost
from streamer.cluster.routes import add_cluster_routes
from streamer.launch import UserError, api_config, model_choice, stop_on_signals

NATS_SERVER = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")


async def serve_cluster(args: argparse.Namespace) -> int:
    if args.ray_address and not args.nats:
        raise UserError("--ray-address needs --nats URL: a NATS server every Ray node can reach")
    api = dataclasses.replace(api_config(args), webrtc=None)  # frames live on the workers
    with local_nats(args.nats) as nats_url:
        start_ray(args.ray_address)
        try:
            config = cluster_config(args, nats_url)
            async with (
                stop_on_signals() as stop,
                ClusterHost(config) as host,
                serve(host, api) as url,
            ):
                names = ", ".join(host.controller.workers)
                print(f"streamer: cluster of {len(host.controller.workers)} workers ({names}); "
                      f"control API at {url}/v1, workers at {url}/v1/workers, events from "
                      f"{redact_url(nats_url)}", file=sys.stderr)  # fmt: skip
                await stop.wait()
        finally:
            ray.shutdown()
    return 0


def cluster_config(args: argparse.Namespace, nats_url: str) -> ClusterConfig:
    workers = args.workers
    if workers is None and not args.device.startswith("cuda"):
        workers = 1
    cpus = 1.0 if workers is None else min(1.0, (os.cpu_count() or 1) / workers)
    capacity = None
    if args.worker_capacity is not None:
        capacity = Capacity(args.worker_capacity, args.frame_cost, origin="--worker-capacity")
    return ClusterConfig(
        nats_url=nats_url, workers=workers, device=args.device, cpus_per_worker=cpus,
        model=model_choice(args), capacity=capacity, state_url=nats_url,
    )  # fmt: skip


def start_ray(address: str | None) -> None:
    """Join the cluster at `address`, or start a local one bound to 127.0.0.1."""
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(
                include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1"
            )  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UserError(f"cannot start Ray{f' at {address}' if address else ''}: {error}") from None


@contextlib.contextmanager
def local_nats(url: str | None) -> Iterator[str]:
    """`url` as given, or a nats-server with JetStream on a free 127.0.0.1 port until exit."""
    if url:
        yield url
        return
    binary = next((found for name in NATS_SERVER if (found := shutil.which(name))), None)
    if binary is None:
        raise UserError("--cluster without --nats starts a local nats-server, and none is "
                        "installed: apt-get install nats-server, or pass --nats URL")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="streamer-nats-") as store:
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(Path(store) / "js")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_for_port(port, proc)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def serve(host: ClusterHost, config: ApiConfig) -> AsyncIterator[str]:
    app = create_app(host, config)
    add_cluster_routes(app, host)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as error:
        await runner.cleanup()
        raise UserError(f"cannot listen on {config.host}:{config.port}: {error.strerror}") from None
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"the local nats-server did not start on port {port}") from None
            time.sleep(0.05)


__all__ = ["serve_cluster"]
