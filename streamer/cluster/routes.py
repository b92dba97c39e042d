"""Cluster-only routes beside the ordinary API: the workers, and draining one.

GET  /v1/workers                    every worker: alive, draining, streams, load, capacity
POST /v1/workers/{worker}/drain     stop placing on it and move its streams elsewhere:
                                    200 {"moved": [...], "stuck": [...]}
POST /v1/workers/{worker}/undrain   place on it again (its streams stay where they are)
"""

from __future__ import annotations

from aiohttp import web

from streamer.cluster.host import ClusterHost

CLUSTER: web.AppKey[ClusterHost] = web.AppKey("cluster", ClusterHost)


def add_cluster_routes(app: web.Application, host: ClusterHost) -> None:
    app[CLUSTER] = host
    app.router.add_get("/v1/workers", list_workers)
    app.router.add_post("/v1/workers/{worker}/drain", drain)
    app.router.add_post("/v1/workers/{worker}/undrain", undrain)


async def list_workers(request: web.Request) -> web.Response:
    return web.json_response({"workers": request.app[CLUSTER].workers_json()})


async def drain(request: web.Request) -> web.Response:
    host, name = _worker(request)
    return web.json_response(await host.drain(name))


async def undrain(request: web.Request) -> web.Response:
    host, name = _worker(request)
    host.controller.undrain(name)
    return web.json_response({"worker": name, "draining": False})


def _worker(request: web.Request) -> tuple[ClusterHost, str]:
    host, name = request.app[CLUSTER], request.match_info["worker"]
    if name not in host.controller.workers:
        known = ", ".join(host.controller.workers)
        raise web.HTTPNotFound(text=f"no worker {name!r}; workers: {known}")
    return host, name
