"""WHIP ingest over real aiortc peers on loopback: publisher -> engine -> events, gaps, DELETE."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.events import FrameResult, ObjectStarted
from protocols.subscribe import subscribe
from streamer.api import ApiConfig
from streamer.engine import Engine, EngineConfig
from streamer.sources.webrtc import WhipSource
from streamer.webrtc import GATEWAY
from tests.fakes import FakeTracker, eventually, running_api
from tests.streamer.webrtc_peers import publish

pytestmark = pytest.mark.timeout(60)


class LossyColourTracker(FakeTracker):
    """FakeTracker after a video codec: colours are snapped back to 0/255 before matching."""

    def step(self, image: np.ndarray, pts: int | None = None):  # type: ignore[no-untyped-def]
        return super().step(np.where(image > 128, 255, 0).astype(np.uint8), pts)


def engine() -> Engine:
    return Engine(LossyColourTracker, config=EngineConfig(status_interval_s=0.1))


async def test_publisher_frames_become_events_with_masks_and_delete_ends_the_stream() -> None:
    async with running_api(engine()) as (eng, client):
        base = str(client.make_url("")).rstrip("/")
        gateway = client.app[GATEWAY]
        publisher = await publish(client.session, base, "cam", query="?concept=red")
        assert publisher.location.startswith("/v1/whip/cam/")
        session = eng.get("cam")
        assert isinstance(session.source, WhipSource)

        events = []
        async with subscribe(base.replace("http", "ws") + "/v1/streams/cam/events") as sub:
            async for event in sub:
                events.append(event)
                results = [e for e in events if isinstance(e, FrameResult) and e.objects]
                if len(results) >= 3:
                    break
        result = next(e for e in reversed(events) if isinstance(e, FrameResult) and e.objects)
        (obj,) = result.objects
        mask = obj.mask()
        assert mask.shape == (240, 320) and 0.8 * 80 * 80 < mask.sum() < 1.2 * 80 * 80
        assert any(isinstance(e, ObjectStarted) and e.object_id == obj.object_id for e in events)
        assert session.stats.frames_in >= 3

        assert await publisher.delete(client.session, base) == 200
        await eventually(lambda: session.done and len(gateway.peers) == 0)
        assert eng.get("cam").state.value == "ended"


async def test_second_publisher_is_refused_while_the_first_is_live() -> None:
    async with running_api(engine()) as (eng, client):
        base = str(client.make_url("")).rstrip("/")
        first = await publish(client.session, base, "cam")
        with pytest.raises(AssertionError, match="409"):
            await publish(client.session, base, "cam")
        await first.delete(client.session, base)


async def test_dropped_publisher_is_a_gap_and_a_new_one_resumes_the_stream() -> None:
    async with running_api(engine()) as (eng, client):
        base = str(client.make_url("")).rstrip("/")
        gateway = client.app[GATEWAY]
        first = await publish(client.session, base, "cam", query="?concept=red")
        session = eng.get("cam")
        await eventually(lambda: session.stats.frames_out > 3)
        tracker = session.lane.tracker
        await first.pc.close()  # hang up without DELETE
        await eventually(lambda: len(gateway.peers) == 0)
        await eventually(lambda: session.state.value == "reconnecting")
        second = await publish(client.session, base, "cam")
        frames = session.stats.frames_out
        await eventually(
            lambda: session.stats.frames_out > frames + 3 and session.state.value == "live"
        )
        assert tracker.gaps and tracker.gaps[-1] > 0  # the tracker was told how long the gap was
        assert session.source.stats.reconnects == 1
        await second.delete(client.session, base)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "needle"),
    [
        ("application/json", "{}", 415, "application/sdp"),
        ("application/sdp", "hello", 400, "not an SDP offer"),
        ("application/sdp", "v=0\r\nbogus", 400, "no video track"),
        (
            "application/sdp",
            "v=0\r\nm=video x UDP/TLS/RTP/SAVPF 96\r\n",
            400,
            "cannot use this SDP offer",
        ),
    ],
)
async def test_bad_offers_get_clear_errors(
    content_type: str, body: str, status: int, needle: str
) -> None:
    async with running_api(engine()) as (eng, client):
        r = await client.post("/v1/whip/cam", data=body, headers={"Content-Type": content_type})
        payload = await r.json()
        assert r.status == status and needle in payload["error"], payload
        assert not eng.sessions and len(client.app[GATEWAY].peers) == 0


async def test_token_is_required_on_whip_but_not_on_the_page_files() -> None:
    async with running_api(engine(), ApiConfig(token="s3cret")) as (eng, client):
        base = str(client.make_url("")).rstrip("/")
        assert (await client.get("/")).status == 200
        assert (await client.get("/web/app.js")).status == 200
        assert (await client.get("/v1/streams")).status == 401
        with pytest.raises(AssertionError, match="401"):
            await publish(client.session, base, "cam")
        publisher = await publish(client.session, base, "cam", token="s3cret")
        assert (await client.delete(publisher.location)).status == 401  # DELETE needs it too
        assert await publisher.delete(client.session, base, token="s3cret") == 200
