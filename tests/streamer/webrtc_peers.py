"""aiortc peers for the WebRTC tests: a WHIP publisher of moving shapes and a WHEP viewer.

Run as a script it publishes until killed (the vanishing-peer test SIGKILLs it, so no DELETE and
no DTLS goodbye ever reach the engine):

    python -m tests.streamer.webrtc_peers http://127.0.0.1:PORT STREAM_ID
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError

from protocols.codec import decode
from protocols.events import Event
from streamer.webrtc.ice import NO_STUN, use_host_addresses

RED = (255, 0, 0)


def shapes(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """H x W x 3 uint8: a grey background with a red square moving 2 px per frame."""
    image = np.full((height, width, 3), 96, dtype=np.uint8)
    x = 20 + (2 * index) % (width - 100)
    image[60:140, x : x + 80] = RED
    return image


class ShapesTrack(VideoStreamTrack):
    """30 fps frames of `shapes(i)`, paced by aiortc's `next_timestamp`."""

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(shapes(self.index), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.index += 1
        return frame


@dataclass
class WhipPublisher:
    pc: RTCPeerConnection
    location: str
    track: ShapesTrack

    async def delete(self, http: aiohttp.ClientSession, base: str, token: str | None = None) -> int:
        async with http.delete(base + self.location, headers=_auth(token)) as r:
            status = r.status
        await self.pc.close()
        return status


async def publish(
    http: aiohttp.ClientSession,
    base: str,
    stream_id: str,
    *,
    query: str = "",
    token: str | None = None,
) -> WhipPublisher:
    """POST a sendonly offer to /v1/whip/{stream_id}; raises AssertionError on a non-201."""
    pc = RTCPeerConnection(NO_STUN)
    track = ShapesTrack()
    pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", **_auth(token)}
    async with http.post(
        f"{base}/v1/whip/{stream_id}{query}", data=pc.localDescription.sdp, headers=headers
    ) as r:
        body = await r.text()
        if r.status != 201:
            await pc.close()
            raise AssertionError(f"WHIP POST -> {r.status}: {body}")
        location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return WhipPublisher(pc, location, track)


@dataclass
class WhepViewer:
    pc: RTCPeerConnection
    location: str
    frames: list[np.ndarray] = field(default_factory=list)  # H x W x 3 uint8 received
    events: list[Event] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # DataChannel messages as received
    first_frame_s: float | None = None
    reader: asyncio.Task[None] | None = None


async def view(
    http: aiohttp.ClientSession,
    base: str,
    stream_id: str,
    *,
    token: str | None = None,
    video: bool = True,
) -> WhepViewer:
    """POST a recvonly video (unless `video` is False) + `events` DataChannel offer to /v1/whep/{id}."""
    pc = RTCPeerConnection(NO_STUN)
    if video:
        pc.addTransceiver("video", direction="recvonly")
    channel = pc.createDataChannel("events")
    viewer = WhepViewer(pc, "")
    started = time.monotonic()

    @channel.on("message")
    def on_message(message: bytes) -> None:
        viewer.raw.append(message)
        viewer.events.append(decode(message))

    @pc.on("track")
    def on_track(track: object) -> None:
        viewer.reader = asyncio.get_running_loop().create_task(_read(viewer, track, started))

    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", **_auth(token)}
    async with http.post(
        f"{base}/v1/whep/{stream_id}", data=pc.localDescription.sdp, headers=headers
    ) as r:
        body = await r.text()
        if r.status != 201:
            await pc.close()
            raise AssertionError(f"WHEP POST -> {r.status}: {body}")
        viewer.location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return viewer


async def _read(viewer: WhepViewer, track: object, started: float) -> None:
    while True:
        try:
            frame = await track.recv()  # type: ignore[attr-defined]
        except MediaStreamError:
            return
        if viewer.first_frame_s is None:
            viewer.first_frame_s = time.monotonic() - started
        viewer.frames.append(frame.to_ndarray(format="rgb24"))


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _publish_forever(base: str, stream_id: str) -> None:
    use_host_addresses(("127.0.0.1",))
    async with aiohttp.ClientSession() as http:
        await publish(http, base, stream_id)
        print("publishing", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_publish_forever(sys.argv[1], sys.argv[2]))
