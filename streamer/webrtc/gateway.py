"""The engine's WebRTC side: WHIP publishers in, WHEP viewers out, one registry of peers.

    async with WebRtcGateway(engine, WebRtcConfig()) as gateway:   # streamer/api.py does this
        ...  # POST /v1/whip/{id} and /v1/whep/{id} land in whip.py / whep.py

The gateway registers a frame tap on the engine, so every stream added afterwards gets a
`VideoEgress` (nothing runs for it until a WHEP viewer comes). It owns the `PeerRegistry`, whose
TaskGroup owns every peer watcher and DataChannel forwarder, and it sets the process-wide ICE host
addresses (streamer/webrtc/ice.py) for as long as it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import SessionDescription

from model.types import Concept
from streamer.engine import Engine, StreamSpec
from streamer.session import FrameSink
from streamer.sources.webrtc import WhipConfig
from streamer.webrtc.datachannel import ChannelConfig
from streamer.webrtc.egress import VideoEgress
from streamer.webrtc.ice import ice_hosts_for, rtc_configuration, use_host_addresses
from streamer.webrtc.peers import Peer, PeerKind, PeerRegistry, TooManyPeers

MAX_SDP_BYTES = 64 * 1024


@dataclass(frozen=True)
class WebRtcConfig:
    # ICE host candidates the engine offers. None: follow the API's bind address (loopback ->
    # 127.0.0.1 only, one address -> that address, 0.0.0.0 / :: -> every interface address).
    ice_hosts: tuple[str, ...] | None = None
    ice_servers: tuple[str, ...] = ()  # stun:/turn: URLs; none by default: nothing leaves the host
    max_peers: int = 32  # WHIP publishers and WHEP viewers together
    negotiate_timeout_s: float = 10.0  # one offer: apply, gather candidates, answer
    whip: WhipConfig = field(default_factory=WhipConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)


class WebRtcGateway:
    """See module docstring; an async context manager, entered once."""

    def __init__(
        self, engine: Engine, config: WebRtcConfig | None = None, *, bind_host: str = "127.0.0.1"
    ) -> None:
        self.engine = engine
        self.config = config or WebRtcConfig()
        hosts = self.config.ice_hosts
        self.ice_hosts: tuple[str, ...] = ice_hosts_for(bind_host) if hosts is None else hosts
        self.peers = PeerRegistry(self.config.max_peers)
        self.egress: dict[str, VideoEgress] = {}  # stream id -> its egress (newest session)
        engine.frame_taps.append(self._tap)

    async def __aenter__(self) -> WebRtcGateway:
        use_host_addresses(self.ice_hosts)
        await self.peers.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.peers.__aexit__(exc_type, exc, tb)
        finally:
            if self._tap in self.engine.frame_taps:
                self.engine.frame_taps.remove(self._tap)
            use_host_addresses(())

    def egress_of(self, stream_id: str) -> VideoEgress | None:
        """The egress of the stream's current session (None if it started before the gateway)."""
        session = self.engine.get(stream_id)
        egress = self.egress.get(stream_id)
        return egress if egress is not None and egress in session.frame_sinks else None

    async def negotiate(
        self,
        kind: PeerKind,
        stream_id: str,
        offer: str,
        remote: str,
        prepare: Callable[[Peer], None],
    ) -> tuple[Peer, str]:
        """Answer `offer` with a new registered peer -> (peer, answer SDP).

        `prepare(peer)` runs once the offer is applied and before the answer is made (add the
        egress track, check the publisher's video); it raises web.HTTPException to refuse. Every
        failure closes the peer and raises a 4xx/5xx web.HTTPException with a one-line reason.
        """
        pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
        try:
            peer = self.peers.add(pc, kind=kind, stream_id=stream_id, remote=remote)
        except TooManyPeers as error:
            await pc.close()
            raise web.HTTPServiceUnavailable(text=str(error)) from None
        try:
            async with asyncio.timeout(self.config.negotiate_timeout_s):
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
                for transceiver in pc.getTransceivers():
                    if transceiver.kind != "video":
                        transceiver.direction = "inactive"  # audio is not used: never receive it
                prepare(peer)
                await pc.setLocalDescription(await pc.createAnswer())
        except (
            ValueError,
            InvalidAccessError,
            InvalidStateError,
            OperationError,
            InternalError,
        ) as error:
            await peer.close()
            raise web.HTTPBadRequest(text=f"cannot use this SDP offer: {error}") from None
        except TimeoutError:
            await peer.close()
            raise web.HTTPServiceUnavailable(text="timed out answering the offer") from None
        except BaseException:
            await peer.close()
            raise
        return peer, pc.localDescription.sdp

    def _tap(self, spec: StreamSpec, stream_id: str, concepts: Mapping[int, Concept]) -> FrameSink:
        for ended in [sid for sid, e in self.egress.items() if e.ended]:
            del self.egress[ended]
        egress = VideoEgress(stream_id, spec.redaction, concepts)
        self.egress[stream_id] = egress
        return egress


GATEWAY: web.AppKey[WebRtcGateway] = web.AppKey("webrtc", WebRtcGateway)


def find_peer(request: web.Request, kind: PeerKind) -> Peer:
    """The peer named by `{stream_id}/{session}` in the URL, or 404."""
    peer = request.app[GATEWAY].peers.get(request.match_info["session"])
    if peer is None or peer.kind is not kind or peer.stream_id != request.match_info["stream_id"]:
        raise web.HTTPNotFound(text=f"no {kind.value.upper()} session at {request.path}")
    return peer


async def read_offer(request: web.Request) -> str:
    """The SDP offer of a WHIP/WHEP POST; 415 for another content type, 400 for a bad body."""
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(text="the offer must be sent as application/sdp")
    body = await request.content.read(MAX_SDP_BYTES + 1)
    if len(body) > MAX_SDP_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_SDP_BYTES, actual_size=len(body))
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the SDP offer is not UTF-8 text") from None
    if not sdp.startswith("v=0"):
        raise web.HTTPBadRequest(text="the body is not an SDP offer (it must start with 'v=0')")
    try:
        SessionDescription.parse(sdp)
    except Exception as error:  # aiortc's parser has no error type: asserts, IndexError, ValueError
        raise web.HTTPBadRequest(
            text=f"cannot use this SDP offer: malformed ({type(error).__name__})"
        ) from None
    return sdp


def sdp_response(answer: str, location: str) -> web.Response:
    """201 Created with the answer and the session's Location (RFC 9725 §4.2)."""
    return web.Response(
        status=201, body=answer.encode(), content_type="application/sdp",
        headers={"Location": location},
    )  # fmt: skip
