"""The synthetic live source, the webcam's error path and the open_source factory."""

from __future__ import annotations

import time

import numpy as np
import pytest

from streamer.sources import (
    RtspSource,
    SourceError,
    SyntheticConfig,
    SyntheticSource,
    WebcamConfig,
    WebcamSource,
    open_source,
)
from streamer.sources.synthetic import SyntheticScene
from streamer.sources.webcam import v4l2_options
from streamer.types import Frame


def test_scene_is_deterministic_and_shapes_move_inside_the_frame() -> None:
    config = SyntheticConfig(width=320, height=240, shapes=4, seed=3)
    a, b = SyntheticScene(config), SyntheticScene(config)
    assert np.array_equal(a.render(7), b.render(7))
    assert not np.array_equal(a.render(0), a.render(5))
    for i in (0, 10, 1000, 123_456):
        boxes = a.boxes(i)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 320).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 240).all()
    frame, (x0, y0, x1, y1) = a.render(10), a.boxes(10)[1]  # shape 1 is a rectangle
    assert (frame[y0:y1, x0:x1] == a.shapes[1].colour).all()


async def test_source_is_paced_live_and_stops_after_frames() -> None:
    source = SyntheticSource(SyntheticConfig(width=64, height=48, fps=50, frames=20), stream_id="s")
    started = time.monotonic()
    frames: list[Frame] = [f async for f in source]
    elapsed = time.monotonic() - started
    pts = [f.pts for f in frames]
    assert pts == sorted(set(pts)) and pts[-1] == 19 and frames[0].stream_id == "s"
    assert len(frames) + source.stats.frames_dropped == 20  # live: a busy loop may miss one
    assert elapsed >= 0.3  # paced: 19 intervals of 20 ms cannot pass sooner (no upper bound:
    # a busy machine may be slower; speed lives in bench/synthetic.py)
    assert source.info is not None and source.info.live and source.info.fps == 50
    assert float(frames[0].time_base) == pytest.approx(1 / 50)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        SyntheticConfig(width=8)
    with pytest.raises(ValueError, match="fps"):
        SyntheticConfig(fps=0)


async def test_missing_webcam_fails_with_a_clear_line() -> None:
    source = WebcamSource("/dev/video-does-not-exist", config=WebcamConfig(open_timeout_s=1))
    with pytest.raises(SourceError, match="cannot open webcam /dev/video-does-not-exist: "):
        async for _ in source:
            pass
    assert v4l2_options(WebcamConfig(capture_size=(1280, 720), fps=30, input_format="mjpeg")) == {
        "video_size": "1280x720",
        "framerate": "30",
        "input_format": "mjpeg",
    }


def test_open_source_picks_the_right_source() -> None:
    synthetic = open_source("synthetic://640x360@15")
    assert isinstance(synthetic, SyntheticSource)
    assert (synthetic.config.width, synthetic.config.height, synthetic.config.fps) == (640, 360, 15)
    assert isinstance(open_source("synthetic://"), SyntheticSource)
    assert isinstance(open_source("rtsp://u:p@cam.local/s"), RtspSource)
    assert isinstance(open_source("/dev/video3"), WebcamSource)
    with pytest.raises(SourceError, match="expected synthetic://WIDTHxHEIGHT@FPS"):
        open_source("synthetic://big")
    with pytest.raises(SourceError, match="at least 16"):
        open_source("synthetic://4x4@30")
