"""WHEP egress over real aiortc peers on loopback: a stream's video and events on one peer."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.events import FrameResult, Hello
from streamer.engine import Engine, EngineConfig
from streamer.webrtc import GATEWAY
from tests.fakes import FakeSource, FakeSources, FakeTracker, eventually, running_api
from tests.streamer.webrtc_peers import shapes, view

pytestmark = pytest.mark.timeout(60)


def camera_engine() -> Engine:
    camera = FakeSource(
        frames=100_000, paced=True, live=True, fps=30, width=320, height=240, draw=shapes
    )
    return Engine(
        FakeTracker,
        config=EngineConfig(status_interval_s=0.1),
        source_factory=FakeSources(cam=camera),
    )


async def test_viewer_gets_video_and_the_streams_events_on_one_peer() -> None:
    async with running_api(camera_engine()) as (engine, client):
        base = str(client.make_url("")).rstrip("/")
        r = await client.post(
            "/v1/streams",
            json={"source": "cam", "stream_id": "door", "concepts": [{"text": "red"}]},
        )
        assert r.status == 201
        viewer = await view(client.session, base, "door")
        assert viewer.location.startswith("/v1/whep/door/")
        await eventually(
            lambda: (
                len(viewer.frames) >= 5
                and sum(isinstance(e, FrameResult) and bool(e.objects) for e in viewer.events) >= 3
            )
        )
        assert isinstance(viewer.events[0], Hello)
        frame = viewer.frames[-1]
        assert frame.shape == (240, 320, 3)
        assert (
            np.abs(frame.astype(int) - (255, 0, 0)).sum(axis=2) < 90
        ).sum() > 0.5 * 80 * 80  # the red square, unredacted

        gateway = client.app[GATEWAY]
        assert (await client.delete(viewer.location)).status == 200
        await eventually(lambda: len(gateway.peers) == 0 and gateway.egress["door"].viewers == 0)
        assert (await client.delete(viewer.location)).status == 404
        await viewer.pc.close()


async def test_redacting_stream_sends_only_redacted_video() -> None:
    async with running_api(camera_engine()) as (engine, client):
        base = str(client.make_url("")).rstrip("/")
        body = {"source": "cam", "stream_id": "door", "concepts": [{"text": "red"}],
                "redaction": {"concepts": ["red"], "style": "fill", "margin_px": 0}}  # fmt: skip
        assert (await client.post("/v1/streams", json=body)).status == 201
        viewer = await view(client.session, base, "door")
        await eventually(lambda: len(viewer.frames) >= 10)
        for frame in viewer.frames:
            red = (np.abs(frame.astype(int) - (255, 0, 0)).sum(axis=2) < 120).sum()
            assert red < 50, f"{red} red pixels left in a redacted frame"
        await viewer.pc.close()


async def test_events_only_viewer_and_unknown_stream() -> None:
    async with running_api(camera_engine()) as (engine, client):
        base = str(client.make_url("")).rstrip("/")
        r = await client.post(
            "/v1/whep/nope", data="v=0\r\n", headers={"Content-Type": "application/sdp"}
        )
        assert r.status == 404
        assert (
            await client.post("/v1/streams", json={"source": "cam", "stream_id": "door"})
        ).status == 201
        viewer = await view(client.session, base, "door", video=False)
        await eventually(lambda: any(isinstance(e, FrameResult) for e in viewer.events))
        assert client.app[GATEWAY].egress["door"].viewers == 0 and not viewer.frames
        await viewer.pc.close()
