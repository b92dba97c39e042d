"""Pure drawing functions for the concept world: shape masks, textures, backgrounds, noise.

Everything draws into fresh numpy arrays (OpenCV is used only as a rasteriser); nothing reads or
writes files. Coordinates are pixels, x to the right and y down; `radius` is an object's
circumradius and `angle` its rotation in radians.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from model.embedded.world.concepts import COLOUR_RGB, Attributes, Shape, Texture


def _polygon(center: tuple[float, float], radii: np.ndarray, angle: float) -> np.ndarray:
    """Vertices (K, 2) int32 of a star-like polygon with vertex k at angle + 2πk/K."""
    k = np.arange(len(radii))
    theta = angle - math.pi / 2 + 2 * math.pi * k / len(radii)
    xs = center[0] + radii * np.cos(theta)
    ys = center[1] + radii * np.sin(theta)
    # cv2 sub-pixel polygons: coordinates scaled by 2**4
    return (np.stack([xs, ys], axis=1) * 16).round().astype(np.int32)


def shape_mask(
    shape: Shape, center: tuple[float, float], radius: float, angle: float, hw: tuple[int, int]
) -> np.ndarray:
    """(H, W) bool mask of one shape; parts outside the canvas are clipped."""
    canvas = np.zeros(hw, np.uint8)
    shift = 4  # sub-pixel bits of the polygon coordinates
    cx, cy = center
    if shape is Shape.CIRCLE or shape is Shape.RING:
        c = (round(cx * 16), round(cy * 16))
        cv2.circle(canvas, c, round(radius * 16), 1, thickness=-1, shift=shift)
        if shape is Shape.RING:
            cv2.circle(canvas, c, round(radius * 0.55 * 16), 0, thickness=-1, shift=shift)
    elif shape is Shape.SQUARE:
        pts = _polygon(center, np.full(4, radius * 0.92), angle + math.pi / 4)
        cv2.fillPoly(canvas, [pts], 1, shift=shift)
    elif shape is Shape.TRIANGLE:
        pts = _polygon((cx, cy + radius * 0.15), np.full(3, radius * 1.05), angle)
        cv2.fillPoly(canvas, [pts], 1, shift=shift)
    elif shape is Shape.STAR:
        radii = np.tile([radius * 1.05, radius * 0.45], 5)
        cv2.fillPoly(canvas, [_polygon(center, radii, angle)], 1, shift=shift)
    elif shape is Shape.CROSS:
        # a plus sign: 12 vertices, arm half-width 0.33 r, arm length r
        a, w = radius, radius * 0.33
        local = np.array(
            [(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w),
             (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w)],
            np.float64,
        )  # fmt: skip
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        pts = (local @ rot.T + np.array([cx, cy])) * 16
        cv2.fillPoly(canvas, [pts.round().astype(np.int32)], 1, shift=shift)
    else:  # pragma: no cover - exhaustive over Shape
        raise ValueError(f"unknown shape {shape}")
    return canvas.astype(bool)


def object_colour(attrs: Attributes, jitter: np.ndarray) -> np.ndarray:
    """(3,) float RGB of an object: the nominal colour, brightness-scaled and jittered.

    `jitter` is (4,) standard-normal draws: one brightness and three per-channel offsets.
    """
    base = np.asarray(COLOUR_RGB[attrs.colour], np.float32)
    brightness = 1.0 + 0.07 * float(np.clip(jitter[0], -2, 2))
    colour: np.ndarray = np.clip(base * brightness + 10.0 * np.clip(jitter[1:], -2, 2), 0, 255)
    return colour


def texture_layer(
    texture: Texture,
    colour: np.ndarray,
    center: tuple[float, float],
    radius: float,
    angle: float,
    hw: tuple[int, int],
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """(H, W, 3) float image of the object's surface; the pattern moves and turns with it.

    The layer covers the window of size `hw` whose top-left pixel is `origin` (x, y) in the
    frame; a window around the object gives the same pixels as the whole frame, cheaper.
    """
    h, w = hw
    x0, y0 = origin
    layer = np.empty((h, w, 3), np.float32)
    layer[:] = colour
    if texture is Texture.PLAIN:
        return layer
    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    # object-local coordinates, rotated with the object
    dx, dy = xs - center[0], ys - center[1]
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    period = max(3.0, radius * 0.5)
    if texture is Texture.STRIPED:
        pattern = np.mod((u + v) / period, 1.0) < 0.5  # diagonal stripes
    else:  # DOTTED
        fu = np.mod(u / period, 1.0) - 0.5
        fv = np.mod(v / period, 1.0) - 0.5
        pattern = fu * fu + fv * fv < 0.09  # dot radius 0.3 period
    shade = colour * 0.35 if colour.mean() > 60 else colour * 0.35 + 120
    layer[pattern] = shade
    return layer


def background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 cluttered, low-saturation background.

    A gradient between two greyish tints, low-frequency blotches, then clutter: lines, arcs and
    faint filled blobs. Saturation stays low so that colour words keep their meaning.
    """
    h, w = hw

    def tint() -> np.ndarray:
        grey = rng.uniform(45, 165)
        return np.clip(grey + rng.normal(0, 12, 3), 0, 255).astype(np.float32)

    # gradient along a random direction
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    t = (xs * math.cos(theta) + ys * math.sin(theta)) / max(h, w)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img: np.ndarray = tint()[None, None] * (1 - t[..., None]) + tint()[None, None] * t[..., None]
    # low-frequency blotches: a coarse random grid upsampled
    coarse = rng.normal(0, 14, (4, 4, 3)).astype(np.float32)
    img += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    # clutter
    scale = min(h, w)
    for _ in range(int(rng.integers(4, 12))):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        thickness = int(rng.integers(1, 3))
        kind = rng.integers(0, 3)
        colour = tuple(float(c) for c in tint())
        if kind == 0:
            cv2.line(img, p1, p2, colour, thickness)
        elif kind == 1:
            axes = (int(rng.integers(3, scale // 4)), int(rng.integers(3, scale // 4)))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(img, p1, axes, 0, start, start + rng.uniform(60, 300), colour, thickness)
        else:
            axes = (int(rng.integers(2, scale // 6)), int(rng.integers(2, scale // 6)))
            cv2.ellipse(img, p1, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return img


def finish(img: np.ndarray, rng: np.random.Generator, noise_sigma: float) -> np.ndarray:
    """Soften edges, add sensor noise, quantise: float (H, W, 3) -> uint8 (H, W, 3)."""
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    img = img + rng.normal(0, noise_sigma, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8)
