"""decode.py: VideoFrame -> RGB, resize, letterbox and mapping masks back."""

from __future__ import annotations

import av
import numpy as np
import pytest

from streamer.decode import letterbox, resize, to_rgb


def test_to_rgb_converts_and_scales() -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 200
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    out = to_rgb(frame)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert abs(int(out[24, 32, 0]) - 200) <= 4 and out[24, 32, 1] < 10
    assert to_rgb(frame, (32, 24)).shape == (24, 32, 3)


def test_resize_shrinks_and_grows() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert resize(rgb, (30, 20)).shape == (20, 30, 3)
    assert resize(rgb, (120, 80)).shape == (80, 120, 3)
    assert resize(rgb, (60, 40)) is rgb


@pytest.mark.parametrize("size", [(64, 48), (48, 64), (50, 50)])
def test_letterbox_round_trip_of_a_mask(size: tuple[int, int]) -> None:
    w, h = size
    rgb = np.full((h, w, 3), 255, np.uint8)
    boxed = letterbox(rgb, 32)
    assert boxed.image.shape == (32, 32, 3)
    content = (boxed.image > 0).all(axis=2)
    assert content.sum() == pytest.approx(round(w * boxed.scale) * round(h * boxed.scale))
    back = boxed.unletterbox(content)  # the content area maps back to the whole frame
    assert back.shape == (h, w) and back.all()
    coarse = boxed.unletterbox(content[::2, ::2])  # a coarser model grid works too
    assert coarse.shape == (h, w) and coarse.mean() > 0.9


def test_letterbox_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="H x W x 3"):
        letterbox(np.zeros((4, 4), np.uint8), 8)
    with pytest.raises(ValueError, match="square"):
        letterbox(np.zeros((4, 4, 3), np.uint8), 8).unletterbox(np.zeros((8, 4), bool))
