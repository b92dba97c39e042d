"""MPEG-TS over UDP, received on a local port (`udp://@:5000`, FFmpeg's spelling), from a real
PyAV sender in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest

from streamer.sources import RtspConfig, RtspSource, open_source

pytestmark = pytest.mark.timeout(60)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def udp_sender() -> Iterator[int]:
    """Sends a 64 x 48 H.264 MPEG-TS at 30 fps to 127.0.0.1:PORT until the test ends; yields PORT."""
    port, stop = free_udp_port(), threading.Event()

    def send() -> None:
        with av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.options = {"g": "5", "tune": "zerolatency", "preset": "ultrafast"}
            for i in range(900):
                if stop.is_set():
                    return
                frame = av.VideoFrame.from_ndarray(
                    np.full((48, 64, 3), 100, np.uint8), format="rgb24"
                )
                frame.pts = i
                container.mux(stream.encode(frame))
                time.sleep(1 / 30)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(5)


@pytest.mark.parametrize("listen", ["udp://@:{port}", "udp://:{port}"])
async def test_a_udp_url_without_a_host_listens_on_its_port(udp_sender: int, listen: str) -> None:
    source = open_source(listen.format(port=udp_sender), rtsp=RtspConfig(max_attempts=1))
    assert isinstance(source, RtspSource)
    async with asyncio.timeout(15):
        frame = await anext(aiter(source))  # was: 'no host in the URL'
    await source.aclose()
    assert frame.rgb.shape == (48, 64, 3)
    assert source.info is not None and source.info.live
    assert source.info.url == listen.format(port=udp_sender)  # shown as typed (was udp://:PORT)
