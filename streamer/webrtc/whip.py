"""WHIP ingest (RFC 9725): a WebRTC publisher becomes a stream's source.

    POST   /v1/whip/{stream_id}[?concept=TEXT...][&redact=TEXT...]   body: SDP offer (application/sdp)
        -> 201 Created, body: SDP answer, Location: /v1/whip/{stream_id}/{session}
    DELETE /v1/whip/{stream_id}/{session}   -> 200: the publisher is done, the stream ends

The first POST for a stream id creates the stream (its source is a `WhipSource`, with the
`concept`s to track and the concepts to `redact` in its WHEP video); concepts can be edited later
through /v1/streams/{id}/concepts like any stream's. When a publisher drops without DELETE (ICE
consent lost, connection failed) the stream reports a gap and keeps its tracks while a new POST for
the same id may reconnect within `WhipConfig.reconnect_window_s`; a POST while a publisher is live
is 409. Once a WHIP stream has ended, a POST for its id starts a new one.

The offer must carry video (audio is answered `inactive`). ICE is not trickled: the answer holds all
of the engine's candidates (PATCH is 405). The bearer token, if set, is required as on every route.
"""

from __future__ import annotations

from aiohttp import web

from model.types import Concept
from streamer.engine import STREAM_ID, StreamSpec
from streamer.sinks.redaction import RedactionSpec
from streamer.sources.webrtc import WhipSource
from streamer.webrtc.gateway import GATEWAY, WebRtcGateway, find_peer, read_offer, sdp_response
from streamer.webrtc.peers import Peer, PeerKind

MAX_QUERY_CONCEPTS = 16


async def whip_post(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    stream_id = _stream_id(request)
    offer = await read_offer(request)
    concepts = tuple(Concept(text) for text in _texts(request, "concept"))
    redact = _texts(request, "redact")
    _check_free(gateway, stream_id)
    peer, answer = await gateway.negotiate(
        PeerKind.WHIP, stream_id, offer, request.remote or "unknown", _require_video
    )
    try:
        source = await _source_for(gateway, stream_id, concepts, redact)
        source.attach(peer)
    except BaseException:
        await peer.close()
        raise
    peer.on_gone.append(source.detach)
    return sdp_response(answer, f"/v1/whip/{stream_id}/{peer.id}")


async def whip_delete(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    peer = find_peer(request, PeerKind.WHIP)
    session = gateway.engine.sessions.get(peer.stream_id)
    if session is not None and isinstance(session.source, WhipSource):
        session.source.finish()  # its track ends with the close below, and the stream with it
    await peer.close()
    return web.Response(status=200)


# --- helpers ---------------------------------------------------------------------------------


def _stream_id(request: web.Request) -> str:
    stream_id = request.match_info["stream_id"]
    if not STREAM_ID.match(stream_id):
        raise web.HTTPBadRequest(
            text=f"stream id {stream_id!r} must be 1-64 letters, digits, '_', '.' or '-'"
        )
    return stream_id


def _texts(request: web.Request, name: str) -> tuple[str, ...]:
    texts = tuple(t.strip() for t in request.query.getall(name, []))
    if any(not t for t in texts) or len(texts) > MAX_QUERY_CONCEPTS:
        raise web.HTTPBadRequest(text=f"'{name}' must be 1..{MAX_QUERY_CONCEPTS} non-empty texts")
    return texts


def _require_video(peer: Peer) -> None:
    if not peer.has_video:
        raise web.HTTPBadRequest(text="the offer has no video track to publish")


def _check_free(gateway: WebRtcGateway, stream_id: str) -> None:
    """Refuse before negotiating when the stream cannot take this publisher."""
    session = gateway.engine.sessions.get(stream_id)
    if session is None or session.done:
        if session is not None and not isinstance(session.source, WhipSource):
            raise web.HTTPConflict(text=f"stream {stream_id!r} exists and is not fed by WHIP")
        return
    if not isinstance(session.source, WhipSource):
        raise web.HTTPConflict(text=f"stream {stream_id!r} exists and is not fed by WHIP")
    if not session.source.accepting:
        raise web.HTTPConflict(text=f"stream {stream_id!r} already has a live WHIP publisher")


async def _source_for(
    gateway: WebRtcGateway, stream_id: str, concepts: tuple[Concept, ...], redact: tuple[str, ...]
) -> WhipSource:
    """The waiting source of the stream, or a new stream's (an ended WHIP stream is replaced)."""
    engine = gateway.engine
    session = engine.sessions.get(stream_id)
    if session is not None and isinstance(session.source, WhipSource):
        if not session.done:
            if not session.source.accepting:
                raise web.HTTPConflict(
                    text=f"stream {stream_id!r} already has a live WHIP publisher"
                )
            return session.source
        await engine.remove_stream(stream_id)
    source = WhipSource(stream_id, gateway.config.whip)
    spec = StreamSpec(
        source=f"whip:{stream_id}", stream_id=stream_id, concepts=concepts, live=True,
        redaction=RedactionSpec(concepts=redact) if redact else None,
    )  # fmt: skip
    try:
        await engine.add_stream(spec, source=source)
    except ValueError as error:
        status = web.HTTPConflict if "already exists" in str(error) else web.HTTPBadRequest
        raise status(text=str(error)) from None
    return source
