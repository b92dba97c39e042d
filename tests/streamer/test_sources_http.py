"""A clip behind a network URL (an mp4 over HTTP) is read like a file, not taken for a live feed.

A real HTTP server (the standard library's, in a thread) serves PyAV-encoded clips. Taken for a
feed, a clip lost its first second (FFmpeg's `nobuffer` drops what it reads while probing), was
decoded faster than the consumer took it (the newest frame won, the rest were dropped) and started
over at its end, forever.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import pytest

from streamer.sources import RtspConfig, RtspSource, open_source
from streamer.types import Frame
from tests.streamer.conftest import Clips, level_of

pytestmark = pytest.mark.timeout(60)


class _Handler(SimpleHTTPRequestHandler):
    stalled_request: int | None = None  # this request (1, 2, ...) stalls after 60 % of its body
    requests = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:  # type: ignore[override]
        type(self).requests += 1
        if type(self).requests != self.stalled_request:
            super().copyfile(source, outputfile)
            return
        body = source.read()
        outputfile.write(body[: len(body) * 6 // 10])
        outputfile.flush()
        time.sleep(2.0)  # far past the read timeout: the reader gives up on this connection


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT
    root: Path  # the folder it serves
    handler: type[_Handler]

    def put(self, clip: Path) -> str:
        shutil.copy(clip, self.root / clip.name)
        return f"{self.base}/{clip.name}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    handler = type("Handler", (_Handler,), {"requests": 0})
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", tmp_path, handler)
    finally:
        server.shutdown()
        server.server_close()


async def read_all(url: str, config: RtspConfig) -> tuple[list[Frame], RtspSource]:
    source = open_source(url, rtsp=config)
    assert isinstance(source, RtspSource)
    async with asyncio.timeout(20):  # a clip taken for a feed never ends
        frames = [frame async for frame in source]
    await source.aclose()
    return frames, source


def in_order(frames: list[Frame], clips: Clips) -> bool:
    levels = [int(f.rgb[f.height // 2, f.width // 2, 1]) for f in frames]
    return len(frames) == clips.frames and all(
        abs(v - level_of(i)) <= 3 for i, v in enumerate(levels)
    )


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
async def test_a_clip_over_http_gives_every_frame_once_and_ends(
    clips: Clips, served: Served, kind: str
) -> None:
    frames, source = await read_all(served.put(getattr(clips, kind)), RtspConfig(max_attempts=1))
    assert in_order(frames, clips)
    assert source.info is not None and not source.info.live
    assert source.stats.frames_dropped == 0


async def test_a_clip_whose_connection_stalls_goes_on_where_it_was(
    clips: Clips, served: Served
) -> None:
    served.handler.stalled_request = 2  # the first read of the clip (the first request probes it)
    config = RtspConfig(stall_timeout_s=0.5, backoff_initial_s=0.05)
    frames, source = await read_all(served.put(clips.mkv), config)
    assert served.handler.requests == 3  # the probe, the read cut short, the one that finished
    assert in_order(frames, clips)  # the frames of the first read are not repeated
    assert source.stats.reconnects == 1
