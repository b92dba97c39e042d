"""RtspSource against a real GStreamer RTSP server: read, kill + restart, stall, bad URLs, credentials."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from streamer.sources import RtspConfig, RtspSource, SourceError, open_source
from streamer.types import Frame, SourceState
from tests.streamer.conftest import PASSWORD, RtspServer, free_port

FAST_RETRY = RtspConfig(open_timeout_s=3.0, backoff_initial_s=0.1, backoff_max_s=0.5)


class Recorder:
    """Collects a source's callbacks with the monotonic time each arrived."""

    def __init__(self, source: RtspSource) -> None:
        self.states: list[tuple[float, SourceState]] = []
        self.gaps: list[float] = []
        self.stalled = asyncio.Event()
        source.on_status = self._status
        source.on_gap = self.gaps.append

    def _status(self, state: SourceState) -> None:
        self.states.append((time.monotonic(), state))
        if state is SourceState.STALLED:
            self.stalled.set()

    def names(self) -> list[str]:
        return [str(s) for _, s in self.states]

    def first(self, state: SourceState) -> float | None:
        return next((t for t, s in self.states if s is state), None)


async def take(source: RtspSource, n: int, timeout_s: float = 15.0) -> list[Frame]:
    frames: list[Frame] = []
    async with asyncio.timeout(timeout_s):
        async for frame in source:
            frames.append(frame)
            if len(frames) == n:
                break
    return frames


@pytest.mark.slow
async def test_reads_a_real_rtsp_stream(rtsp_server: RtspServer) -> None:
    source = RtspSource(rtsp_server.url(), stream_id="cam", config=FAST_RETRY)
    recorder = Recorder(source)
    frames = await take(source, 15)
    await source.aclose()

    assert [f.seq for f in frames] == list(range(15)) or frames[-1].seq >= 14  # live: drops allowed
    assert all(f.stream_id == "cam" and f.rgb.shape == (240, 320, 3) for f in frames)
    assert all(f.rgb.flags.c_contiguous for f in frames)
    pts = [f.pts for f in frames]
    assert all(
        a is not None and b is not None and b > a for a, b in zip(pts, pts[1:], strict=False)
    )
    assert source.info is not None and source.info.live and source.info.fps == pytest.approx(30)
    assert source.info.url == rtsp_server.url()
    assert recorder.names()[:2] == ["connecting", "live"]


@pytest.mark.slow
async def test_udp_transport(rtsp_server: RtspServer) -> None:
    source = RtspSource(rtsp_server.url(), config=RtspConfig(transport="udp"))
    frames = await take(source, 5)
    await source.aclose()
    assert len(frames) == 5 and frames[0].rgb.shape == (240, 320, 3)


@pytest.mark.slow
async def test_server_killed_and_restarted_reconnects_and_reports_the_gap(
    rtsp_server: RtspServer,
) -> None:
    source = RtspSource(rtsp_server.url(), config=FAST_RETRY)
    recorder = Recorder(source)
    frames = await take(source, 10)

    killed_at = time.monotonic()
    await asyncio.to_thread(rtsp_server.kill)
    reader = asyncio.create_task(take(source, 10, timeout_s=20.0))  # keeps reading across the drop
    await asyncio.sleep(1.0)
    await asyncio.to_thread(rtsp_server.start)
    after = await reader
    await source.aclose()

    assert len(after) == 10 and after[0].seq > frames[-1].seq
    assert recorder.gaps and len(recorder.gaps) == 1
    assert 1.0 <= recorder.gaps[0] < 10.0, recorder.gaps
    reconnecting = recorder.first(SourceState.RECONNECTING)
    assert reconnecting is not None and reconnecting - killed_at < 1.0  # a hang-up is seen at once
    assert recorder.names()[-1] == "live"
    assert source.stats.reconnects == 1


@pytest.mark.slow
async def test_stall_is_detected_within_three_seconds_and_recovers(
    rtsp_server: RtspServer,
) -> None:
    source = RtspSource(rtsp_server.url(), config=FAST_RETRY)
    recorder = Recorder(source)
    await take(source, 5)

    rtsp_server.pause()
    paused_at = time.monotonic()
    reader = asyncio.create_task(take(source, 5, timeout_s=25.0))
    await asyncio.wait_for(recorder.stalled.wait(), 5.0)
    detected = recorder.first(SourceState.STALLED)
    assert detected is not None and detected - paused_at < 3.0
    print(f"stall detected after {detected - paused_at:.2f} s")
    rtsp_server.resume()
    after = await reader
    await source.aclose()

    assert len(after) == 5
    assert recorder.gaps and recorder.gaps[0] >= 2.0
    names = recorder.names()
    assert names.index("stalled") < names.index("reconnecting") < len(names) - 1
    assert names[-1] == "live"


@pytest.mark.slow
async def test_aclose_returns_promptly_while_ffmpeg_is_blocked(rtsp_server: RtspServer) -> None:
    source = RtspSource(rtsp_server.url(), config=RtspConfig(stall_timeout_s=5.0))
    await take(source, 3)
    rtsp_server.pause()  # the decoder thread now sits in a read that only its timeout ends
    await asyncio.sleep(0.3)  # not a hand-off: more time blocked only makes the case harder
    started = time.monotonic()
    await source.aclose()
    assert time.monotonic() - started < 4.0  # not the 5 s stall timeout (a busy machine is slow)
    await source.aclose()  # idempotent


async def test_bad_scheme_fails_at_once() -> None:
    with pytest.raises(SourceError, match="unsupported"):
        open_source("ftp://camera.local/stream")
    with pytest.raises(SourceError, match="unsupported scheme"):
        RtspSource("mms://camera.local/stream")


@pytest.mark.parametrize("port", ["99999", "-1", "0", "abc"])
async def test_a_bad_port_fails_at_once_without_credentials(port: str) -> None:
    with pytest.raises(SourceError, match="not a valid URL") as info:
        open_source(f"rtsp://admin:hunter2@camera.local:{port}/stream")
    assert "hunter2" not in str(info.value)
    with pytest.raises(SourceError, match=r"rtsp://\[::1/x: not a valid URL \(Invalid IPv6 URL\)"):
        open_source("rtsp://admin:hunter2@[::1/x")


@pytest.mark.parametrize("url", ["http://", "rtsp://", "rtsp://:554/x", "rtmp:///live"])
async def test_no_host_fails_at_once(url: str) -> None:
    with pytest.raises(SourceError, match="no host in the URL"):
        open_source(url)


async def test_unresolvable_host_fails_quickly_with_a_clear_line() -> None:
    source = RtspSource("rtsp://admin:hunter2@no-such-camera.invalid/stream")
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        await take(source, 1)
    assert time.monotonic() - started < 2.0
    message = str(info.value)
    assert "cannot resolve host 'no-such-camera.invalid'" in message
    assert "hunter2" not in message and "admin" not in message


async def test_an_upper_case_scheme_reaches_the_server() -> None:
    source = open_source(f"RTSP://127.0.0.1:{free_port()}/test", rtsp=RtspConfig(max_attempts=1))
    assert isinstance(source, RtspSource)
    with pytest.raises(
        SourceError, match=r"Connection refused"
    ):  # not FFmpeg's 'Protocol not found'
        await take(source, 1)


async def test_refused_connection_gives_up_after_max_attempts() -> None:
    config = RtspConfig(max_attempts=3, backoff_initial_s=0.05)
    source = RtspSource(f"rtsp://127.0.0.1:{free_port()}/test", config=config)
    recorder = Recorder(source)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"Connection refused \(gave up after 3 attempts\)"):
        await take(source, 1)
    assert time.monotonic() - started < 2.0
    assert recorder.names() == ["connecting", "failed"]


@pytest.mark.slow
async def test_a_server_that_never_answers_is_named_a_timeout() -> None:
    with socket.socket() as silent:  # the kernel accepts the connection; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/test"
        source = RtspSource(url, config=RtspConfig(open_timeout_s=0.5, max_attempts=1))
        with pytest.raises(
            SourceError, match=r"no answer within 0.5 s \(gave up after 1 attempt\)"
        ):
            await take(source, 1)  # was: 'Invalid data found when processing input'


async def test_unknown_path_is_a_404_error_after_max_attempts(rtsp_server: RtspServer) -> None:
    config = RtspConfig(max_attempts=2, backoff_initial_s=0.05)
    source = RtspSource(rtsp_server.url("/no-such-path"), config=config)
    with pytest.raises(SourceError, match="404 Not Found"):
        await take(source, 1)


@pytest.mark.slow
async def test_credentials_never_reach_logs_errors_or_info(
    rtsp_auth_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = RtspSource(rtsp_auth_server.url(user="viewer"), config=FAST_RETRY)
    frames = await take(good, 3)
    await good.aclose()
    assert len(frames) == 3
    assert good.info is not None and PASSWORD not in good.info.url and "viewer" not in good.info.url

    wrong = rtsp_auth_server.url(user="viewer").replace(PASSWORD, PASSWORD[::-1])
    bad = RtspSource(wrong, config=FAST_RETRY)
    started = time.monotonic()
    with pytest.raises(SourceError, match="authentication failed") as info:
        await take(bad, 1)
    assert time.monotonic() - started < 2.0  # permanent: no retries
    error = info.value
    chain: list[BaseException] = [error]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    texts = [str(e) for e in chain] + [repr(e) for e in chain]
    texts += [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    for secret in (PASSWORD, PASSWORD[::-1]):
        assert not any(secret in text for text in texts), secret
