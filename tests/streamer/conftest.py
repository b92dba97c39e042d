"""Real media for the streamer tests: PyAV-encoded clips and a real GStreamer RTSP server.

* `clips`: tiny H.264 mp4 / mkv and VP8 webm files made with PyAV at test time. Frame i is filled with
  grey level `level_of(i)`, so a reader can tell which frame it got.
* `rtsp_server`: one GStreamer RTSP server process for the whole session (tests/streamer/rtsp_server.py
  under /usr/bin/python3). Tests may `kill()` it, `restart()` it on the same port, or `pause()` it
  (SIGSTOP, a stall); the fixture makes sure it is running and responsive again before each test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
PASSWORD = "s3cret-Pa55"  # the --auth server's password; tests assert it never leaks


def level_of(index: int) -> int:
    """Grey level of frame `index` in the test clips (far apart so compression cannot blur them)."""
    return (index * 37) % 200 + 28


def encode_clip(
    path: Path, *, frames: int, fps: int, size: tuple[int, int], codec: str = "libx264"
) -> Path:
    """Write `frames` flat grey frames (level_of(i)) with pts = i at time base 1/fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(frames):
            rgb = np.full((size[1], size[0], 3), level_of(i), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass(frozen=True)
class Clips:
    mp4: Path
    mkv: Path
    webm: Path
    frames: int
    fps: int
    size: tuple[int, int]  # (width, height)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    root = tmp_path_factory.mktemp("clips")
    frames, fps, size = 30, 30, (160, 120)
    return Clips(
        mp4=encode_clip(root / "clip.mp4", frames=frames, fps=fps, size=size),
        mkv=encode_clip(root / "clip.mkv", frames=frames, fps=fps, size=size),
        webm=encode_clip(root / "clip.webm", frames=frames, fps=fps, size=size, codec="libvpx"),
        frames=frames,
        fps=fps,
        size=size,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """A GStreamer RTSP server child process on a fixed port; kill / restart / pause at will."""

    def __init__(self, port: int, *, auth: bool = False) -> None:
        self.port = port
        self.auth = auth
        self.process: subprocess.Popen[str] | None = None
        self.paused = False

    def url(self, path: str = "/test", *, user: str | None = None) -> str:
        userinfo = f"{user}:{PASSWORD}@" if user else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path}"

    def start(self, timeout_s: float = 10.0) -> None:
        if not os.path.exists(SYSTEM_PYTHON):
            pytest.fail(
                f"{SYSTEM_PYTHON} missing: install the GStreamer packages (scripts/bootstrap.sh dev)"
            )
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--password", PASSWORD]
        if self.auth:
            args.append("--auth")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        self.paused = False
        deadline = time.monotonic() + timeout_s
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "ready" not in line:
            self.kill()
            pytest.fail(f"RTSP server did not start on port {self.port}: {line!r}")
        while (
            time.monotonic() < deadline
        ):  # the port is bound once `ready` is printed; double-check
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        pytest.fail(f"RTSP server on port {self.port} is not accepting connections")

    def kill(self) -> None:
        if self.process is None:
            return
        if self.paused:
            self.process.send_signal(signal.SIGCONT)
        self.process.kill()
        self.process.wait(10)
        self.process = None
        self.paused = False

    def restart(self) -> None:
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the TCP connections stay open but nothing more is sent (a stalled camera)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def ensure_running(self) -> None:
        if self.process is not None and self.paused:
            self.resume()
        if self.process is None or self.process.poll() is not None:
            self.process = None
            self.start()


@pytest.fixture(scope="session")
def _rtsp_server_session() -> Iterator[RtspServer]:
    server = RtspServer(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def rtsp_server(_rtsp_server_session: RtspServer) -> Iterator[RtspServer]:
    """The session's RTSP server, running and not paused at the start and end of the test."""
    _rtsp_server_session.ensure_running()
    yield _rtsp_server_session
    _rtsp_server_session.ensure_running()


@pytest.fixture
def rtsp_auth_server() -> Iterator[RtspServer]:
    """A second server whose every mount needs basic auth (user `viewer`, password PASSWORD)."""
    server = RtspServer(free_port(), auth=True)
    server.start()
    yield server
    server.kill()
