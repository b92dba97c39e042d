"""Outputs write decodable H.264 with the frames' own pts: files, and an RTSP push read back."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.outputs import (
    EncoderConfig,
    FileOutput,
    OutputError,
    OverflowPolicy,
    RtspOutput,
    open_output,
)
from streamer.sources import FileSource
from streamer.types import Frame
from tests.fakes import eventually
from tests.streamer.conftest import free_port, level_of


def listening(port: int) -> bool:
    """Whether a socket of this machine listens on TCP `port` (Linux: /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def make_frame(
    i: int, *, pts: int | None, time_base: Fraction, size: tuple[int, int] = (160, 120)
) -> Frame:
    rgb = np.full((size[1], size[0], 3), level_of(i), dtype=np.uint8)
    return Frame("cam", i, pts, time_base, time.time_ns(), rgb)


def read_back(path: Path) -> tuple[list[float], list[int], tuple[int, int]]:
    """-> (pts in seconds, grey level of each frame, (width, height)) in presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    seconds = [float(f.pts * f.time_base) for f in frames]
    levels = [int(np.median(f.to_ndarray(format="rgb24"))) for f in frames]
    return seconds, levels, (frames[0].width, frames[0].height)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
async def test_file_keeps_every_frame_and_its_pts(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    output = FileOutput(path)
    tb = Fraction(1, 90_000)
    pts = [45_000 + 3_000 * i for i in range(30)]  # starts at 0.5 s, 30 fps
    for i, p in enumerate(pts):
        await output.send(make_frame(i, pts=p, time_base=tb))
    await output.aclose()
    await output.aclose()  # idempotent

    seconds, levels, size = read_back(path)
    assert len(seconds) == 30 and size == (160, 120)
    assert seconds == pytest.approx([float(p * tb) for p in pts], abs=1e-3)
    assert all(abs(got - level_of(i)) <= 3 for i, got in enumerate(levels))
    assert output.stats.frames_written == 30 and output.stats.frames_dropped == 0


async def test_backwards_pts_are_shifted_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "rebased.mp4"
    output = FileOutput(path, encoder=EncoderConfig(fps=10))
    tb = Fraction(1, 10)
    for i, p in enumerate([100, 101, 102, 0, 1]):  # the source reconnected and restarted its clock
        await output.send(make_frame(i, pts=p, time_base=tb))
    await output.aclose()
    seconds, _, _ = read_back(path)
    assert seconds == pytest.approx([10.0, 10.1, 10.2, 10.3, 10.4])
    assert output.stats.pts_rebased == 1


def clip_with_pts(path: Path, pts: list[int], fps: int = 10) -> Path:
    """An H.264 clip whose frame i has pts `pts[i]` (1/fps), repeats included (muxers write them)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), level_of(i), np.uint8), "rgb24")
            frame.pts, frame.time_base = p, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
async def test_a_repeated_pts_does_not_push_the_frames_after_it(
    tmp_path: Path, suffix: str
) -> None:
    clip = clip_with_pts(tmp_path / "dup.mkv", [0, 1, 1, 2, 3, 3, 4, 5, 6, 7])
    source = [f async for f in FileSource(clip)]
    assert [f.pts for f in source] == [0, 100, 100, 200, 300, 300, 400, 500, 600, 700]  # ms
    output = FileOutput(tmp_path / f"out{suffix}", encoder=EncoderConfig(fps=10))
    for frame in source:
        await output.send(frame)
    await output.aclose()
    seconds, _, _ = read_back(tmp_path / f"out{suffix}")
    # each repeat 1 ms after its twin; every other frame at its own time (was: 0.1 s later per repeat)
    expected = [0.0, 0.1, 0.101, 0.2, 0.3, 0.301, 0.4, 0.5, 0.6, 0.7]
    assert seconds == pytest.approx(expected, abs=2e-4)
    assert output.stats.pts_rebased == 2


def raw_h264(path: Path, segments: list[tuple[tuple[int, int], int, int]]) -> Path:
    """A raw H.264 stream whose frame size changes: one encode per (size, frames, grey level),
    concatenated, as a camera or a .ts does when its resolution changes mid-stream."""
    with path.open("wb") as raw:
        for (width, height), frames, grey in segments:
            codec = av.CodecContext.create("libx264", "w")
            assert isinstance(codec, av.VideoCodecContext)
            codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
            codec.time_base = Fraction(1, 10)
            for i in range(frames + 1):  # the last round flushes the encoder
                rgb = np.full((height, width, 3), grey, np.uint8)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24") if i < frames else None
                if frame is not None:
                    frame.pts = i
                for packet in codec.encode(frame):
                    raw.write(bytes(packet))
    return path


async def test_a_mid_stream_size_change_keeps_its_aspect_ratio(tmp_path: Path) -> None:
    clip = raw_h264(tmp_path / "change.h264", [((64, 32), 3, 60), ((32, 32), 3, 200)])
    source = [f async for f in FileSource(clip)]
    assert [f.rgb.shape[:2] for f in source] == [(32, 64)] * 3 + [(32, 32)] * 3
    output = FileOutput(tmp_path / "out.mp4")
    for frame in source:
        await output.send(frame)
    await output.aclose()
    with av.open(str(tmp_path / "out.mp4")) as container:
        images = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(images) == 6 and all(image.shape == (32, 64, 3) for image in images)
    for square in images[3:]:  # the 32 x 32 frames: pillarboxed, not stretched to 64 x 32
        assert abs(square[:, 20:44].mean() - 200) < 8
        assert square[:, :12].max() < 24 and square[:, -12:].max() < 24


async def test_frames_without_pts_use_the_capture_clock_and_odd_sizes_are_evened(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nopts.mkv"
    output = FileOutput(path)
    start = time.time_ns()
    for i in range(5):
        frame = make_frame(i, pts=None, time_base=Fraction(1, 30), size=(161, 121))
        frame = Frame(frame.stream_id, i, None, frame.time_base, start + i * 50_000_000, frame.rgb)
        await output.send(frame)
    await output.aclose()
    seconds, _, size = read_back(path)
    assert size == (160, 120)
    assert np.diff(seconds) == pytest.approx([0.05] * 4, abs=2e-3)


@pytest.mark.parametrize(("size", "even"), [((1, 1), (2, 2)), ((3, 1), (2, 2)), ((1, 6), (2, 6))])
async def test_one_pixel_sides_are_repeated_not_cut_to_nothing(
    tmp_path: Path, size: tuple[int, int], even: tuple[int, int]
) -> None:
    path = tmp_path / "thin.mp4"
    output = FileOutput(path)
    for i in range(3):
        await output.send(make_frame(i, pts=i, time_base=Fraction(1, 30), size=size))
    await output.aclose()
    _, levels, written = read_back(path)
    assert written == even
    assert [abs(level - level_of(i)) <= 3 for i, level in enumerate(levels)] == [True] * 3


async def test_an_odd_last_row_and_column_are_cut_off_not_blended_in(tmp_path: Path) -> None:
    rgb = np.zeros((17, 33, 3), dtype=np.uint8)
    rgb[-1, :] = rgb[:, -1] = 255  # the odd row and column: bright, all else black
    path = tmp_path / "odd.mp4"
    output = FileOutput(path)
    await output.send(Frame("cam", 0, 0, Fraction(1, 30), time.time_ns(), rgb))
    await output.aclose()
    with av.open(str(path)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert image.shape == (16, 32, 3)
    assert image.max() < 40  # scaling 33 -> 32 would smear the bright column into the last one


async def test_block_policy_applies_back_pressure_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "slow.mp4"
    output = FileOutput(path, queue_size=1, policy=OverflowPolicy.BLOCK)
    for i in range(40):
        await output.send(make_frame(i, pts=i, time_base=Fraction(1, 30), size=(320, 240)))
    await output.aclose()
    assert len(read_back(path)[0]) == 40 and output.stats.frames_dropped == 0


async def test_bad_targets_fail_with_a_clear_line(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="use one of"):
        FileOutput(tmp_path / "out.avi2")
    with pytest.raises(OutputError, match="does not exist"):
        FileOutput(tmp_path / "missing" / "out.mp4")
    with pytest.raises(OutputError, match="rtsp://"):
        RtspOutput("http://host/x")
    assert isinstance(open_output(str(tmp_path / "a.mkv")), FileOutput)
    assert isinstance(open_output("rtsp://127.0.0.1:1/x"), RtspOutput)


async def test_nothing_sent_writes_nothing(tmp_path: Path) -> None:
    output = FileOutput(tmp_path / "empty.mp4")
    await output.aclose()
    assert not (tmp_path / "empty.mp4").exists()
    with pytest.raises(OutputError, match="after aclose"):
        await output.send(make_frame(0, pts=0, time_base=Fraction(1, 30)))


async def test_rtsp_push_to_a_dead_server_fails_without_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    output = RtspOutput(f"rtsp://pub:T0psecret@127.0.0.1:{free_port()}/live")
    with pytest.raises(OutputError, match="Connection refused") as info:
        for i in range(50):
            await output.send(make_frame(i, pts=i, time_base=Fraction(1, 30)))
            await asyncio.sleep(0.01)
        await output.aclose()
    assert "T0psecret" not in str(info.value) and info.value.__context__ is None
    assert not any("T0psecret" in r.getMessage() for r in caplog.records)


LISTENER = """
import json, sys, av, numpy as np
options = {"rtsp_flags": "listen", "listen_timeout": "20"}
print("listening", flush=True)
with av.open(sys.argv[1], options=options, timeout=(25, 5)) as container:
    try:
        for frame in container.decode(video=0):
            level = int(np.median(frame.to_ndarray(format="rgb24")))
            seconds = None if frame.pts is None else float(frame.pts * frame.time_base)
            print(json.dumps([seconds, level]), flush=True)
    except av.error.FFmpegError:
        pass  # the publisher hung up
"""


@pytest.mark.slow
async def test_rtsp_push_is_received_by_a_real_rtsp_listener() -> None:
    """FFmpeg's RTSP server role (rtsp_flags=listen), in its own process, ingests the push.

    Its own process because PyAV holds the GIL during the RTSP handshake (see RtspOutput).
    """
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live"
    listener = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LISTENER, url, stdout=asyncio.subprocess.PIPE
    )
    assert listener.stdout is not None
    assert (await listener.stdout.readline()).startswith(b"listening")
    await eventually(lambda: listening(port), within_s=30)  # bound, without taking its one accept
    output = RtspOutput(url)
    tb = Fraction(1, 30)
    start = time.monotonic()
    for i in range(90):  # 3 s of video, paced like a live source
        await output.send(make_frame(i, pts=i, time_base=tb))
        await asyncio.sleep(max(0.0, start + (i + 1) / 30 - time.monotonic()))
    await output.aclose()
    out, _ = await asyncio.wait_for(listener.communicate(), 15)
    received = [json.loads(line) for line in out.decode().splitlines()]

    assert len(received) >= 60, len(received)  # the listener's probing may swallow the first few
    seconds = np.array([s for s, _ in received if s is not None])
    assert len(seconds) >= 60
    assert np.diff(seconds) == pytest.approx(1 / 30, abs=2e-3)  # pts spacing survives the trip
    skipped = 90 - len(received)  # only leading frames may be missing, never one in the middle
    levels = [level for _, level in received]
    assert all(abs(got - level_of(skipped + k)) <= 4 for k, got in enumerate(levels)), levels
