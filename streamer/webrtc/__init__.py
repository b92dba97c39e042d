"""WebRTC on the engine's HTTP server: WHIP ingest, WHEP egress with events, and the live page.

`add_webrtc(app, engine, config)` (called by streamer/api.create_app) registers

    POST /v1/whip/{stream_id}              DELETE /v1/whip/{stream_id}/{session}
    POST /v1/whep/{stream_id}              DELETE /v1/whep/{stream_id}/{session}
    GET  /                                 the live page (streamer/web/index.html)
    GET  /web/...                          its JS modules and styles

and runs the `WebRtcGateway` for the app's lifetime (aiohttp cleanup context): it starts with the
app and, when the app stops, closes every peer before the engine shuts down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from streamer.engine import Engine
from streamer.webrtc.gateway import GATEWAY, WebRtcConfig, WebRtcGateway
from streamer.webrtc.whep import whep_delete, whep_post
from streamer.webrtc.whip import whip_delete, whip_post

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
PUBLIC_PREFIXES = ("/web/",)  # static page files: no secrets, loadable without the token
PUBLIC_PATHS = ("/",)

__all__ = ["GATEWAY", "WebRtcConfig", "WebRtcGateway", "add_webrtc", "is_public"]


def add_webrtc(
    app: web.Application,
    engine: Engine,
    config: WebRtcConfig | None = None,
    *,
    bind_host: str = "127.0.0.1",
) -> WebRtcGateway:
    gateway = WebRtcGateway(engine, config, bind_host=bind_host)
    app[GATEWAY] = gateway
    r = app.router
    r.add_post("/v1/whip/{stream_id}", whip_post)
    r.add_delete("/v1/whip/{stream_id}/{session}", whip_delete)
    r.add_post("/v1/whep/{stream_id}", whep_post)
    r.add_delete("/v1/whep/{stream_id}/{session}", whep_delete)
    r.add_get("/", _index)
    r.add_static("/web/", WEB_ROOT, follow_symlinks=False)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        async with gateway:
            yield

    app.cleanup_ctx.append(lifetime)
    return gateway


def is_public(path: str) -> bool:
    """Paths the page needs before it has a token (the token lives in the page's URL fragment)."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_ROOT / "index.html", headers={"Cache-Control": "no-cache"})
