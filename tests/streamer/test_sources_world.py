"""The concept-world live source (`world://SIDE@FPS`), the demo's default scene."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.sources import SourceError, WorldSource, WorldSourceConfig, open_source
from streamer.sources.world import render_clip
from streamer.types import Frame


async def test_clips_play_back_to_back_paced_and_square() -> None:
    config = WorldSourceConfig(size=48, fps=40, clip_seconds=0.25, seed=2, frames=25)  # 10 / clip
    source = WorldSource(config, stream_id="w")
    frames: list[Frame] = [f async for f in source]
    assert source.info is not None and source.info.live and source.info.url == "world://48@40"
    assert len(frames) + source.stats.frames_dropped == 25
    assert all(f.rgb.shape == (48, 48, 3) and f.rgb.dtype == np.uint8 for f in frames)
    by_pts = {f.pts: f.rgb for f in frames}
    clips = [render_clip(config, k) for k in range(3)]
    for pts, rgb in by_pts.items():  # frame i is frame i % 10 of clip i // 10
        assert np.array_equal(rgb, clips[pts // 10].frames[pts % 10].image), pts


def test_open_source_parses_world_urls() -> None:
    source = open_source("world://256@10")
    assert isinstance(source, WorldSource)
    assert (source.config.size, source.config.fps) == (256, 10.0)
    assert open_source("world://").config == WorldSourceConfig()  # type: ignore[attr-defined]
    assert open_source("world://", size=(200, 200)).config.size == 200  # type: ignore[attr-defined]
    with pytest.raises(SourceError, match="expected world://SIDE@FPS"):
        open_source("world://640x360")
    with pytest.raises(SourceError, match="square"):
        open_source("world://", size=(640, 360))
    with pytest.raises(SourceError, match="32..2048"):
        open_source("world://8@15")
