"""FileSource on PyAV-encoded mp4 / mkv / webm: order, pts, pacing, looping, policies, errors."""

from __future__ import annotations

import asyncio
import re
import struct
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.sources import FileConfig, FileSource, HandoffPolicy, SourceError, open_source
from streamer.types import Frame, SourceState
from tests.streamer.conftest import Clips, encode_clip, level_of


async def read_all(source: FileSource, limit: int | None = None) -> list[Frame]:
    frames: list[Frame] = []
    async for frame in source:
        frames.append(frame)
        if limit is not None and len(frames) == limit:
            break
    await source.aclose()
    return frames


def level(frame: Frame) -> int:
    return int(frame.rgb[frame.height // 2, frame.width // 2, 1])


@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm"])
async def test_every_frame_in_order_with_its_pts(clips: Clips, kind: str) -> None:
    source = FileSource(getattr(clips, kind), stream_id="f")
    states: list[str] = []
    source.on_status = states.append
    frames = await read_all(source)

    assert len(frames) == clips.frames
    assert [f.seq for f in frames] == list(range(clips.frames))
    assert all(abs(level(f) - level_of(i)) <= 3 for i, f in enumerate(frames))
    seconds = [float(f.pts * f.time_base) for f in frames if f.pts is not None]
    assert seconds == pytest.approx([i / clips.fps for i in range(clips.frames)], abs=2e-3)
    assert source.info is not None and not source.info.live
    assert (source.info.width, source.info.height) == clips.size
    assert states == [SourceState.LIVE, SourceState.ENDED]
    assert source.stats.frames_decoded == clips.frames and source.stats.frames_dropped == 0


async def test_realtime_is_paced_by_pts(clips: Clips) -> None:
    # Lower bounds only: pacing cannot deliver sooner than the pts say; a busy machine may
    # deliver later, so no upper bound (speed lives in bench/).
    assert len(await read_all(FileSource(clips.mp4))) == clips.frames  # unpaced: every frame
    started = time.monotonic()
    paced = await read_all(FileSource(clips.mp4, config=FileConfig(realtime=True)))
    elapsed = time.monotonic() - started
    span = (clips.frames - 1) / clips.fps  # first to last frame
    assert len(paced) == clips.frames
    assert elapsed >= span - 0.05

    started = time.monotonic()
    fast = await read_all(FileSource(clips.mp4, config=FileConfig(realtime=True, speed=4.0)))
    assert len(fast) == clips.frames and time.monotonic() - started >= span / 4 - 0.05


async def test_loop_keeps_pts_increasing(clips: Clips) -> None:
    n = clips.frames * 2 + 5
    frames = await read_all(FileSource(clips.mkv, config=FileConfig(loop=True)), limit=n)
    assert len(frames) == n
    seconds = [float(f.pts * f.time_base) for f in frames if f.pts is not None]
    assert seconds == pytest.approx([i / clips.fps for i in range(n)], abs=2e-3)
    assert [abs(level(f) - level_of(i % clips.frames)) <= 3 for i, f in enumerate(frames)] == [
        True
    ] * n


async def test_block_policy_loses_nothing_for_a_slow_consumer(clips: Clips) -> None:
    source = FileSource(clips.mp4, config=FileConfig(queue_size=1))
    frames: list[Frame] = []
    async for frame in source:
        frames.append(frame)
        await asyncio.sleep(0.005)  # a slow consumer: the decoder must wait, not drop
    assert [f.seq for f in frames] == list(range(clips.frames))


async def test_latest_policy_drops_and_counts_for_a_slow_consumer(clips: Clips) -> None:
    source = FileSource(clips.mp4, config=FileConfig(policy=HandoffPolicy.LATEST, queue_size=1))
    frames: list[Frame] = []
    async for frame in source:
        frames.append(frame)
        await asyncio.sleep(0.02)
    stats = source.stats
    assert stats.frames_dropped > 0
    assert len(frames) + stats.frames_dropped == stats.frames_decoded == clips.frames
    assert frames[-1].seq == clips.frames - 1  # the newest frame always gets through


async def test_aclose_mid_file_stops_a_blocked_decoder(clips: Clips) -> None:
    source = FileSource(clips.mp4, config=FileConfig(loop=True, queue_size=1))
    await read_all(source, limit=3)
    thread = source._thread
    assert thread is not None
    thread.join(1.0)
    assert not thread.is_alive()
    await source.aclose()  # idempotent
    assert [f async for f in source] == []


def audio_only_clip(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16_000)
        for i in range(4):
            samples = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            samples.sample_rate, samples.pts = 16_000, i * 1024
            container.mux(stream.encode(samples))
        container.mux(stream.encode(None))
    return path


def test_missing_and_broken_files_are_refused_at_once_with_a_clear_line(
    tmp_path: Path, clips: Clips
) -> None:
    junk, empty, truncated = tmp_path / "junk.mp4", tmp_path / "empty.mp4", tmp_path / "cut.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    empty.touch()
    whole = clips.mp4.read_bytes()  # its index (moov) is at the end: gone with the second half
    truncated.write_bytes(whole[: len(whole) // 2])
    (tmp_path / "folder.mp4").mkdir()
    unknown = tmp_path / "unknown.mkv"  # an H.264 mkv whose codec id no decoder claims
    unknown.write_bytes(clips.mkv.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_ZZZZZ/ISO/ZZZ"))
    cases = [
        (tmp_path / "nope.mp4", "video file not found: .*nope.mp4"),
        (tmp_path / "folder.mp4", "folder.mp4 is a folder, not a video file"),
        (empty, "empty.mp4 is empty"),
        (junk, "cannot open video file .*junk.mp4: Invalid data"),
        (truncated, "cannot open video file .*cut.mp4"),
        (audio_only_clip(tmp_path / "voice.m4a"), "voice.m4a has no video stream"),
        (unknown, "unknown.mkv has video FFmpeg has no decoder for"),
    ]
    for path, message in cases:
        with pytest.raises(SourceError, match=message):
            open_source(str(path))


async def test_size_option_scales_frames(clips: Clips) -> None:
    source = open_source(str(clips.webm), size=(80, 64))
    frames = await read_all(source, limit=2)  # type: ignore[arg-type]
    assert frames[0].rgb.shape == (64, 80, 3)
    assert source.info is not None and (source.info.width, source.info.height) == (80, 64)


def portrait_phone_clip(path: Path, frames: int = 3) -> Path:
    """A 64 x 32 landscape H.264 mp4 whose track matrix says 'turn 90 degrees clockwise', as phones
    store portrait video: left half red, right half blue as coded, so red is on top when upright."""
    rgb = np.zeros((32, 64, 3), dtype=np.uint8)
    rgb[:, :32] = (255, 0, 0)
    rgb[:, 32:] = (0, 0, 255)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    tkhd = data.find(b"tkhd") - 4  # version 0 box: the 3 x 3 matrix sits 48 bytes in
    matrix = (0, 0x10000, 0, -0x10000 & 0xFFFFFFFF, 0, 0, 0, 0, 0x40000000)
    data[tkhd + 48 : tkhd + 84] = struct.pack(">9I", *matrix)
    path.write_bytes(bytes(data))
    return path


async def test_rotated_phone_video_comes_out_upright(tmp_path: Path) -> None:
    clip = portrait_phone_clip(tmp_path / "portrait.mp4")
    source = FileSource(clip)
    frames = await read_all(source)
    assert len(frames) == 3
    assert source.info is not None and (source.info.width, source.info.height) == (32, 64)
    top, bottom = frames[0].rgb[8, 16], frames[0].rgb[56, 16]
    assert frames[0].rgb.shape == (64, 32, 3)
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # red on top, blue below

    scaled = await read_all(FileSource(clip, config=FileConfig(size=(16, 32))))
    assert scaled[0].rgb.shape == (32, 16, 3)  # `size` is the upright size


@pytest.mark.parametrize("loop", [False, True])
async def test_a_cut_file_ends_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, loop: bool
) -> None:
    whole = encode_clip(tmp_path / "whole.mkv", frames=30, fps=10, size=(32, 24))  # 3 s
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(
        whole.read_bytes()[: whole.stat().st_size * 3 // 4]
    )  # its header still says 3 s
    config = FileConfig(loop=loop)
    frames = await read_all(FileSource(cut, config=config), limit=60 if loop else None)
    assert 0 < len(frames) < 30 or loop
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings  # was none; a looping file says it once
    assert re.fullmatch(
        rf"file {cut}: its video ends at [12]\.\d s of the 3\.0 s it declares "
        r"\(truncated or corrupt file\)",
        warnings[0],
    )
    caplog.clear()
    assert len(await read_all(FileSource(whole))) == 30
    assert not caplog.records  # a whole file says nothing
