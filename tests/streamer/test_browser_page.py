"""End to end in headless Debian Chromium: the page publishes a canvas of moving shapes over WHIP,
the engine tracks a concept with the tiny model, and the page gets masks over a WHEP DataChannel
and plays the WHEP video. Chromium is driven over the DevTools protocol (no Node, no download);
a screenshot is saved under runs/test-artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from model.types import Concept, ConceptThresholds
from streamer.engine import Engine, EngineConfig
from streamer.sources.webrtc import WhipSource
from streamer.webrtc import GATEWAY
from tests.fakes import eventually, running_api

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "runs" / "test-artifacts"
CHROMIUM_FLAGS = [  # what makes WebRTC work headless on loopback (docs/webrtc.md)
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required", "--window-size=1280,800",
]  # fmt: skip


def tiny_tracker_factory() -> Any:
    """VideoTracker on the tiny model (random weights): every concept gets zero thresholds, so
    the untrained detector still spawns objects and the page has masks to draw."""
    import torch

    from model import VideoTracker, build_sam3

    torch.set_num_threads(2)
    model = build_sam3("tiny", device="cpu").eval()

    class EagerTracker(VideoTracker):
        def add_concept(self, concept: Concept) -> int:
            return super().add_concept(replace(concept, thresholds=ConceptThresholds(0.0, 0.0)))

    return lambda: EagerTracker(model)


class DevTools:
    """Just enough of the Chrome DevTools protocol: call a method, wait for its result."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await self.ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=30)
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]  # type: ignore[no-any-return]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def chromium(url: str) -> AsyncIterator[DevTools]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap.sh dev (Debian chromium)")
    # Chromium's helpers (renderer, crashpad) outlive a killed parent and may still write to the
    # profile: they get their own process group, killed as one, and a late write cannot fail the
    # profile's removal.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = await asyncio.create_subprocess_exec(
            binary, *CHROMIUM_FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", url,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if process.returncode is not None or time.monotonic() > deadline:
                    pytest.fail(f"chromium did not start (exit code {process.returncode})")
                await asyncio.sleep(0.1)
            port = port_file.read_text().split()[0]
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    pages = [t for t in await r.json() if t["type"] == "page"]
                async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    yield DevTools(ws)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def test_page_publishes_a_canvas_and_shows_masks_and_whep_video() -> None:
    engine = Engine(tiny_tracker_factory(), config=EngineConfig(status_interval_s=0.5))
    async with running_api(engine) as (eng, client):
        base = str(client.make_url("")).rstrip("/")
        url = f"{base}/?source=canvas&stream=browser&concepts=red&autostart=1"
        async with chromium(url) as page:
            stats: dict[str, Any] = {}
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                stats = json.loads(await page.evaluate("JSON.stringify(window.sam3 ?? {})") or "{}")
                assert not stats.get("errors"), stats
                if stats.get("framesWithMasks", 0) >= 3 and stats.get("videoFrames", 0) >= 10:
                    break
                await asyncio.sleep(0.5)
            shot = await page.call("Page.captureScreenshot", format="png")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "browser-page.png").write_bytes(base64.b64decode(shot["data"]))

            assert stats.get("hello", {}).get("protocolVersion") == 1, stats
            assert stats["framesWithMasks"] >= 3 and stats["maskPixels"] > 0, stats
            assert stats["videoFrames"] >= 10, stats  # the WHEP video plays
            session = eng.get("browser")
            assert isinstance(session.source, WhipSource) and session.stats.frames_out >= 3
            size = await page.evaluate(
                "[document.getElementById('video').videoWidth, document.getElementById('overlay').width]"
            )
            assert size[0] > 0 and size[1] > 0
            rows = await page.evaluate("document.querySelectorAll('#objects tbody tr').length")
            assert rows >= 1

            await page.evaluate("document.getElementById('stop').click()")
            gateway = client.app[GATEWAY]
            await eventually(lambda: len(gateway.peers) == 0 and session.done, within_s=20)
