"""WHEP egress (draft-ietf-wish-whep): a stream's video and its events to a WebRTC viewer.

    POST   /v1/whep/{stream_id}   body: SDP offer (application/sdp)
        -> 201 Created, body: SDP answer, Location: /v1/whep/{stream_id}/{session}
    DELETE /v1/whep/{stream_id}/{session}   -> 200

The offer's video m-line (recvonly) gets the stream's output video: redacted when the stream
redacts, else the source's frames (streamer/webrtc/egress.py). A DataChannel labelled `events`
opened by the viewer in the same offer carries the stream's events, one encoded event per message,
`Hello` first (streamer/webrtc/datachannel.py): video and masks arrive together on one peer. An
offer may carry either or both. Streams added before the gateway started (Python API only; the
CLI starts it first) have no egress (409).
"""

from __future__ import annotations

from aiohttp import web
from aiortc import RTCDataChannel

from streamer.channels import Overflow
from streamer.webrtc.datachannel import EVENTS_LABEL, EventChannel
from streamer.webrtc.gateway import GATEWAY, WebRtcGateway, find_peer, read_offer, sdp_response
from streamer.webrtc.peers import Peer, PeerKind


async def whep_post(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    stream_id = request.match_info["stream_id"]
    session = gateway.engine.get(stream_id)  # 404 through the API's error middleware
    egress = gateway.egress_of(stream_id)
    if session.done or egress is None or egress.ended:
        why = "has ended" if session.done else "started before WebRTC egress was enabled"
        raise web.HTTPConflict(text=f"stream {stream_id!r} {why}")
    offer = await read_offer(request)

    def prepare(peer: Peer) -> None:
        wants_video = any(t.kind == "video" for t in peer.pc.getTransceivers())
        if wants_video:
            track = egress.add_viewer()
            peer.pc.addTrack(track)
            peer.on_gone.append(lambda _: track.stop())
        peer.pc.on("datachannel", lambda channel: _open_events(gateway, peer, channel))

    peer, answer = await gateway.negotiate(
        PeerKind.WHEP, stream_id, offer, request.remote or "unknown", prepare
    )
    return sdp_response(answer, f"/v1/whep/{stream_id}/{peer.id}")


async def whep_delete(request: web.Request) -> web.Response:
    peer = find_peer(request, PeerKind.WHEP)
    await peer.close()
    return web.Response(status=200)


def _open_events(gateway: WebRtcGateway, peer: Peer, channel: RTCDataChannel) -> None:
    if channel.label != EVENTS_LABEL or peer.gone.is_set():
        return
    config = gateway.config.channel
    subscription = gateway.engine.hub.subscribe(
        peer.stream_id, maxsize=config.queue, overflow=Overflow.DROP_OLDEST
    )
    forwarder = EventChannel(channel, subscription, config)
    gateway.peers.spawn(forwarder.run(), name=f"whep-events:{peer.stream_id}:{peer.id}")
