"""Live network streams (RTSP first; also rtsps, rtmp, srt, udp, http) through PyAV, made robust.

What FFmpeg does on its own, and what this file adds (measured, docs/sources.md "How RTSP behaves"):

* A server that dies just ends the demux iterator, without an exception: here that is a disconnect.
* A server that stalls blocks a read forever unless a timeout is set: every read runs under PyAV's
  interrupt-callback timeout of `stall_timeout_s`, the watchdog on time since the last packet, so a
  stall becomes `SourceState.STALLED` and a reconnect within that many seconds.
* Reconnects back off exponentially with jitter; after the first frame on a new connection the source
  calls `on_gap(seconds since the last frame)` so the tracker can keep IDs across short drops.
* Permanent failures (bad scheme, unresolvable host, 401/403 authentication, no video stream) raise
  `SourceError` at once; transient ones (refused, 404, timeouts, hang-ups) are retried, forever by
  default, or `max_attempts` consecutive times.
* Credentials never reach logs, errors or `SourceInfo.url`: only `redact_url(url)` is ever printed.
* A URL that turns out to be a finite clip (FFmpeg knows its duration: an mp4 over HTTP, a VOD
  RTSP mount) is read like a file: not live, no frame dropped, and it ends at its end instead of
  starting over; after a dropped connection the frames already delivered are skipped.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal
from urllib.parse import urlsplit

import av
import av.container
import av.error

from protocols.credentials import redact_url
from streamer.decode import upright_size
from streamer.sources.base import SourceError
from streamer.sources.handoff import HandoffPolicy
from streamer.sources.pyav_io import (
    Stalled,
    av_reason,
    decoded_frames,
    frame_to_producer,
    make_info,
    video_stream,
)
from streamer.sources.threaded import Producer, ThreadedSource
from streamer.types import SourceState

log = logging.getLogger(__name__)

NETWORK_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "http", "https"}
)
LISTENING_SCHEMES = frozenset({"udp", "rtp", "srt"})  # without a host: receive on a local port


@dataclass(frozen=True, slots=True)
class RtspConfig:
    transport: Literal["tcp", "udp"] = "tcp"  # RTSP only; TCP survives NAT and packet loss
    open_timeout_s: float = 5.0  # connect + DESCRIBE/SETUP/PLAY + probing the first packets
    stall_timeout_s: float = 2.0  # no packet for this long -> STALLED -> reconnect
    max_attempts: int | None = (
        None  # consecutive failed connects before SourceError; None = forever
    )
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 10.0
    backoff_jitter: float = 0.2  # +-20 % so that many cameras do not reconnect in lock-step
    queue_size: int = 1  # frames waiting for the loop; the newest wins
    size: tuple[int, int] | None = None  # (width, height) to scale to while converting, or native

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', got {self.transport!r}")
        if self.open_timeout_s <= 0 or self.stall_timeout_s <= 0:
            raise ValueError("open_timeout_s and stall_timeout_s must be > 0")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {self.max_attempts}")


def network_url(url: str) -> str:
    """`url` checked as a network stream's address, by its text alone (nothing is resolved or
    connected to), with its scheme in lower case (FFmpeg knows 'rtsp', not 'RTSP'). Raises a
    credential-free SourceError for a bad port, a missing host or an unknown scheme."""
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        scheme, port = parts.scheme, parts.port  # ValueError unless the port is 0..65535
    except ValueError as e:
        raise SourceError(f"{safe}: not a valid URL ({e})") from None
    if port == 0:
        raise SourceError(f"{safe}: not a valid URL (port 0)")
    if not parts.hostname and scheme not in LISTENING_SCHEMES:
        raise SourceError(f"{safe}: no host in the URL")
    if scheme not in NETWORK_SCHEMES:
        raise SourceError(
            f"{safe}: unsupported scheme {scheme!r} for a network stream "
            f"(expected one of {', '.join(sorted(NETWORK_SCHEMES))})"
        )
    return scheme + url[len(scheme) :]


def backoff_delay(attempt: int, config: RtspConfig, rng: random.Random) -> float:
    """Seconds to wait before connect attempt `attempt + 1` (attempt >= 1 failures so far)."""
    base = min(config.backoff_max_s, config.backoff_initial_s * 2 ** (attempt - 1))
    jitter = rng.uniform(-config.backoff_jitter, config.backoff_jitter)
    return float(max(0.0, base * (1.0 + jitter)))


class _Permanent(Exception):
    """A connect failure that no retry can fix; its message is already credential-free."""


class RtspSource(ThreadedSource):
    def __init__(self, url: str, *, stream_id: str = "0", config: RtspConfig | None = None) -> None:
        self.config = config or RtspConfig()
        super().__init__(
            stream_id=stream_id, policy=HandoffPolicy.LATEST, capacity=self.config.queue_size
        )
        self.safe_url = redact_url(url)
        self._url = network_url(url)
        self._rng = random.Random()
        self._finite = False  # decided at the first connection: a clip with a duration, not a feed
        self._last_pts: int | None = None  # finite clips: the newest pts delivered

    def _describe(self) -> str:
        return self.safe_url

    # -- the decoder thread ---------------------------------------------------------------------

    def _produce(self, out: Producer) -> None:
        failures = 0  # consecutive failed connects
        last_frame_at: float | None = None  # monotonic time of the newest frame, across reconnects
        out.status(SourceState.CONNECTING)
        while True:
            attempt = f" (attempt {failures + 1})" if failures else ""
            self._say(out, f"connecting to {self.safe_url}{attempt}")
            started = time.monotonic()
            try:
                container = self._connect(first=last_frame_at is None)
            except _Permanent as e:
                raise SourceError(f"{self.safe_url}: {e}") from None
            except av.error.FFmpegError as e:
                failures += 1
                reason = _attempt_reason(e, self._url, time.monotonic() - started, self.config)
                attempts = self.config.max_attempts
                if attempts is not None and failures >= attempts:
                    plural = "s" if failures != 1 else ""
                    raise SourceError(
                        f"{self.safe_url}: {reason} (gave up after {failures} attempt{plural})"
                    ) from None
                delay = backoff_delay(failures, self.config, self._rng)
                self._say(out, f"{self.safe_url}: {reason}; retrying in {delay:.2g} s", failed=True)
                out.sleep(delay)
                continue
            try:
                last_frame_at, stalled, got_frames, complete = self._read(
                    container, out, last_frame_at
                )
            finally:
                container.close()
            if complete:
                return
            if got_frames:
                failures = 0
            else:  # connected but nothing came through: counts as a failed attempt
                failures += 1
            if stalled:
                out.status(SourceState.STALLED)
            out.status(SourceState.RECONNECTING)
            delay = backoff_delay(max(1, failures), self.config, self._rng)
            self._say(out, f"{self.safe_url}: reconnecting in {delay:.2g} s")
            out.sleep(delay)

    def _say(self, out: Producer, message: str, *, failed: bool = False) -> None:
        """One line on the log (stderr) and to the session (events); never a credential."""
        log.log(logging.WARNING if failed else logging.INFO, "%s", message)
        out.note(message, failed=failed)

    def _connect(self, *, first: bool) -> av.container.InputContainer:
        """Open the URL; on the `first` connection, one that has a duration is a clip, not a feed,
        and is opened again as a clip."""
        container = self._open()
        if first and not self._finite and container.duration:
            self._finite = True
            self._handoff.policy = HandoffPolicy.BLOCK  # before its first frame: lose none
            container.close()
            container = self._open()
        return container

    def _open(self) -> av.container.InputContainer:
        """Resolve, open and check for a video stream; FFmpegError for transient failures."""
        self._resolve_host()
        cfg = self.config
        options = {"flags": "low_delay", "analyzeduration": "1000000"}
        if not self._finite:  # drops what is read while probing: less latency, but a clip's start
            options["fflags"] = "nobuffer"
        if urlsplit(self._url).scheme.lower().startswith("rtsp"):
            options["rtsp_transport"] = cfg.transport
        try:
            container = av.open(
                self._url, options=options, timeout=(cfg.open_timeout_s, cfg.stall_timeout_s)
            )
        except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError) as e:
            given = "the credentials in the URL were refused" if urlsplit(self._url).password else (
                "the server wants credentials (rtsp://user:password@host/...)")  # fmt: skip
            status = av_reason(e).split(" (")[0]  # "401 Unauthorized (authorization failed)"
            raise _Permanent(
                f"authentication failed ({status}): {given}; check the credentials"
            ) from None
        except av.error.ProtocolNotFoundError as e:
            raise _Permanent(f"protocol not supported by FFmpeg ({av_reason(e)})") from None
        if video_stream(container) is None:
            container.close()
            raise _Permanent("the stream has no video track")
        return container

    def _resolve_host(self) -> None:
        parts = urlsplit(self._url)
        host = parts.hostname
        if not host and parts.scheme in LISTENING_SCHEMES:
            return  # udp://@:5000 listens on every interface: nothing to resolve
        if not host:
            raise _Permanent("no host in the URL")
        try:
            socket.getaddrinfo(host, parts.port or 554)
        except socket.gaierror as e:
            if e.errno == socket.EAI_AGAIN:  # DNS down for now: retry like any outage
                raise av.error.FFmpegError(e.errno, "temporary DNS failure") from None
            raise _Permanent(f"cannot resolve host {host!r} ({e.strerror})") from None

    def _read(
        self, container: av.container.InputContainer, out: Producer, last_frame_at: float | None
    ) -> tuple[float | None, bool, bool, bool]:
        """Decode until the connection ends -> (last frame time, stalled?, any frame?, a finite
        clip read to its end?)."""
        stream = video_stream(container)
        assert stream is not None
        stream.thread_type = "SLICE"  # frame threading would add a frame of latency per thread
        time_base = stream.time_base or Fraction(1, 90_000)
        reconnected = last_frame_at is not None
        got_frames = False
        last_packet_at = time.monotonic()
        # a finite clip waits for the consumer between packets: that is not a stall
        watchdog = None if self._finite else self.config.stall_timeout_s
        try:
            for frame in decoded_frames(container, stream, out, watchdog):
                now = time.monotonic()
                last_packet_at = now
                if self._finite and _seen(frame.pts, self._last_pts):
                    continue  # delivered before the connection dropped
                if not got_frames:
                    got_frames = True
                    self._announce(out, frame, stream, reconnected, last_frame_at, now)
                frame_to_producer(out, frame, self.config.size, time_base)
                last_frame_at, self._last_pts = now, frame.pts
        except Stalled as e:
            log.warning("%s: connection lost (stalled: %s)", self.safe_url, e)
            return last_frame_at, True, got_frames, False
        except av.error.FFmpegError as e:
            silent = time.monotonic() - last_packet_at
            stalled = silent >= 0.9 * self.config.stall_timeout_s
            what = f"stalled: no packet for {silent:.1f} s" if stalled else av_reason(e)
            log.warning("%s: connection lost (%s)", self.safe_url, what)
            return last_frame_at, stalled, got_frames, False
        if self._finite:
            return last_frame_at, False, got_frames, True
        log.warning("%s: server ended the stream", self.safe_url)
        return last_frame_at, False, got_frames, False

    def _announce(
        self,
        out: Producer,
        frame: av.VideoFrame,
        stream: av.VideoStream,
        reconnected: bool,
        last_frame_at: float | None,
        now: float,
    ) -> None:
        """First frame on a connection: info, then the gap (after a reconnect), then LIVE."""
        size = self.config.size or upright_size(frame)
        out.info(make_info(self.safe_url, stream, size, live=not self._finite))
        if reconnected and last_frame_at is not None:
            out.reconnects += 1
            gap = now - last_frame_at
            log.info("%s: reconnected after a %.2f s gap", self.safe_url, gap)
            if not self._finite:  # a clip goes on where it was: nothing was missed
                out.gap(gap)
        out.status(SourceState.LIVE)


def _attempt_reason(
    error: av.error.FFmpegError, url: str, took_s: float, config: RtspConfig
) -> str:
    """Why one connection attempt failed, in words a person acts on (credential-free)."""
    if took_s >= 0.9 * config.open_timeout_s:
        # FFmpeg words its own timeout as 'Invalid data' or 'Immediate exit requested'
        return f"no answer within {config.open_timeout_s:g} s"
    reason = av_reason(error)
    if isinstance(error, av.error.HTTPNotFoundError) or reason.startswith("404"):
        path = urlsplit(url).path or "/"
        return f"{reason}: the server has no stream at {path!r} (check the mount path)"
    return reason


def _seen(pts: int | None, last: int | None) -> bool:
    return pts is not None and last is not None and pts <= last
