"""Redaction drawing: only the mask (+ margin) changes; fail-closed changes every region; speed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from streamer.blur import RedactConfig, RedactStyle, redact, redact_all

H, W = 180, 320


@pytest.fixture
def noisy() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def disc(cx: int, cy: int, r: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


@pytest.mark.parametrize("style", list(RedactStyle))
@pytest.mark.parametrize("margin", [0, 6])
def test_only_the_grown_masks_change(noisy: np.ndarray, style: RedactStyle, margin: int) -> None:
    masks = [disc(80, 60, 25), disc(250, 140, 15), disc(318, 5, 10)]  # the last one hits the border
    config = RedactConfig(style=style, margin_px=margin, strength_px=16)
    before = noisy.copy()
    out = redact(noisy, masks, config)

    assert np.array_equal(noisy, before), "the input frame must not be modified"
    changed = (out != noisy).any(axis=2)
    distance = distance_transform_edt(~np.logical_or.reduce(masks))  # px to the nearest mask pixel
    assert not changed[distance > margin + 1].any(), "pixels beyond mask + margin changed"
    inner = distance <= max(0, margin - 1)
    assert changed[inner].mean() > 0.99, "pixels inside the grown mask were left as they were"


def test_fill_paints_the_colour_and_no_masks_is_a_copy(noisy: np.ndarray) -> None:
    config = RedactConfig(style=RedactStyle.FILL, margin_px=0, fill_rgb=(255, 0, 128))
    mask = disc(100, 100, 20)
    out = redact(noisy, [mask], config)
    assert (out[mask] == (255, 0, 128)).all()
    untouched = redact(noisy, [], config)
    assert np.array_equal(untouched, noisy) and untouched is not noisy
    assert np.array_equal(redact(noisy, [np.zeros((H, W), bool)], config), noisy)


def test_blur_removes_detail(noisy: np.ndarray) -> None:
    mask = np.zeros((H, W), bool)
    mask[40:140, 60:260] = True
    out = redact(noisy, [mask], RedactConfig(margin_px=0, strength_px=32))
    # White noise has a per-pixel std of ~74; after a 32 px blur hardly anything is left of it.
    assert noisy[mask].astype(float).std() > 60
    assert out[50:130, 70:250].astype(float).std() < 12


def test_pixelate_blocks_follow_the_frame_grid(noisy: np.ndarray) -> None:
    mask = np.zeros((H, W), bool)
    mask[32:96, 64:160] = True  # exactly on a 16 px grid
    out = redact(
        noisy, [mask], RedactConfig(style=RedactStyle.PIXELATE, margin_px=0, strength_px=16)
    )
    block = out[32:48, 64:80]
    assert (block == block[0, 0]).all()
    assert not (out[32:48, 64:96] == out[32, 64]).all()  # neighbouring blocks differ


@pytest.mark.parametrize("style", list(RedactStyle))
def test_fail_closed_changes_every_region(noisy: np.ndarray, style: RedactStyle) -> None:
    out = redact_all(noisy, RedactConfig(style=style, strength_px=16))
    assert out.shape == noisy.shape and out.dtype == np.uint8
    for y in range(0, H, 20):  # every 20 x 20 tile, borders and corners included
        for x in range(0, W, 20):
            tile_in, tile_out = noisy[y : y + 20, x : x + 20], out[y : y + 20, x : x + 20]
            assert (tile_in != tile_out).any(axis=2).mean() > 0.9, (x, y)


def test_bad_inputs_are_rejected_with_a_message(noisy: np.ndarray) -> None:
    with pytest.raises(ValueError, match="bool array"):
        redact(noisy, [np.zeros((H, W), np.uint8)], RedactConfig())
    with pytest.raises(ValueError, match="bool array"):
        redact(noisy, [np.zeros((H // 2, W), bool)], RedactConfig())
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        redact_all(noisy[..., 0], RedactConfig())
    with pytest.raises(ValueError, match="margin_px"):
        RedactConfig(margin_px=-1)
