"""Every WebRTC peer of the engine, each watched until it is gone and then closed.

A `Peer` is one `RTCPeerConnection` (a WHIP publisher or a WHEP viewer) with the resource id its
Location URL names. The `PeerRegistry` gives each peer a watcher task in its TaskGroup; the
watcher waits for the peer to go, whichever way it goes:

    DELETE on its Location           -> Peer.close()
    ICE consent lost (~30 s silent)  -> connectionState "failed"   (aioice: 6 checks x ~5 s)
    DTLS close from the other side   -> connectionState "closed"
    its stream ended or was removed  -> Peer.close() from the owner
    engine shutdown                  -> the registry's TaskGroup is cancelled

and then closes the connection, forgets the peer and runs the peer's `on_gone` callbacks (the WHIP
source detaches, the WHEP tap drops its viewer). A peer that vanishes without DELETE is therefore
closed within the ICE consent timeout, and nothing of it stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection

log = logging.getLogger(__name__)


class PeerKind(enum.Enum):
    WHIP = "whip"  # a publisher: its video enters a stream
    WHEP = "whep"  # a viewer: a stream's video and events leave


class TooManyPeers(RuntimeError):
    pass


class Peer:
    """One peer connection and what the engine knows about it."""

    def __init__(
        self, pc: RTCPeerConnection, *, kind: PeerKind, stream_id: str, remote: str
    ) -> None:
        self.id = secrets.token_urlsafe(12)  # unguessable: the Location URL is the only handle
        self.pc = pc
        self.kind = kind
        self.stream_id = stream_id
        self.remote = remote
        self.gone = asyncio.Event()  # set once the peer is closing, for any reason
        self.on_gone: list[Callable[[Peer], None]] = []
        self._video: MediaStreamTrack | None = None
        self._video_arrived = asyncio.Event()
        pc.on("connectionstatechange", self._on_state)
        pc.on("track", self._on_track)

    @property
    def video(self) -> MediaStreamTrack:
        """The publisher's video track (WHIP); set while the offer is applied."""
        if self._video is None:
            raise RuntimeError(f"peer {self.id} has no video track")
        return self._video

    @property
    def has_video(self) -> bool:
        return self._video is not None

    async def close(self) -> None:
        """Hang up (idempotent); the registry's watcher finishes the clean-up."""
        self.gone.set()
        await self.pc.close()

    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.debug("%s peer %s of %s: %s", self.kind.value, self.id, self.stream_id, state)
        if state in ("failed", "closed"):
            self.gone.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self._video is None:
            self._video = track


class PeerRegistry:
    """The live peers by id, at most `max_peers`; an async context manager owning the watchers."""

    def __init__(self, max_peers: int) -> None:
        if max_peers < 1:
            raise ValueError(f"max_peers must be >= 1, got {max_peers}")
        self.max_peers = max_peers
        self._peers: dict[str, Peer] = {}
        self._tg = asyncio.TaskGroup()
        self._open = False

    async def __aenter__(self) -> PeerRegistry:
        await self._tg.__aenter__()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        for peer in list(self._peers.values()):
            peer.gone.set()  # every watcher closes its peer and returns
        await self._tg.__aexit__(exc_type, exc, tb)

    def __len__(self) -> int:
        return len(self._peers)

    def get(self, peer_id: str) -> Peer | None:
        return self._peers.get(peer_id)

    def peers(self, kind: PeerKind | None = None, stream_id: str | None = None) -> list[Peer]:
        return [
            p for p in self._peers.values()
            if (kind is None or p.kind is kind) and (stream_id is None or p.stream_id == stream_id)
        ]  # fmt: skip

    def add(self, pc: RTCPeerConnection, *, kind: PeerKind, stream_id: str, remote: str) -> Peer:
        """Track a new connection; raises TooManyPeers (the caller closes `pc`) when full."""
        if not self._open:
            raise RuntimeError("the WebRTC gateway is not running")
        if len(self._peers) >= self.max_peers:
            raise TooManyPeers(f"at most {self.max_peers} WebRTC peers at a time")
        peer = Peer(pc, kind=kind, stream_id=stream_id, remote=remote)
        self._peers[peer.id] = peer
        self._tg.create_task(self._watch(peer), name=f"{kind.value}-peer:{stream_id}:{peer.id}")
        return peer

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run a peer's helper (a DataChannel forwarder) in the registry's TaskGroup; it must
        return once its peer is gone, which every watcher ensures by closing the connection."""
        self._tg.create_task(coro, name=name)

    async def _watch(self, peer: Peer) -> None:
        try:
            await peer.gone.wait()
        finally:  # also on cancellation: the connection must not outlive the registry
            self._peers.pop(peer.id, None)
            with contextlib.suppress(Exception):
                await peer.pc.close()
            for callback in peer.on_gone:
                try:
                    callback(peer)
                except Exception:  # one owner's bug must not leave the others' state behind
                    log.exception("on_gone callback of peer %s failed", peer.id)
            peer.on_gone.clear()
