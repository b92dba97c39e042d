"""COCO RLE speed: protocols.rle against pycocotools on 1080p masks of realistic shapes.

    .venv/bin/python bench/rle.py [--masks 32] [--repeat 5]

Masks are what a tracker publishes: a few solid blobs (ellipses and boxes) on a 1920x1080 frame.
Both sides get the input they want: ours a C-ordered bool mask (what the model hands over),
pycocotools a Fortran-ordered uint8 copy made outside the timer; the ratio that includes the
`np.asfortranarray` a caller with a C-ordered mask must pay is printed as well. Ratios above 1 mean
ours is faster. Prints the commit and numpy version; best-of-`repeat` timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from protocols import rle  # noqa: E402

H, W = 1080, 1920


def realistic_mask(rng: np.random.Generator) -> np.ndarray:
    """A few blobs: filled ellipses and rectangles of plausible object sizes. H x W bool."""
    yy, xx = np.ogrid[:H, :W]
    mask = np.zeros((H, W), np.bool_)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        ry, rx = rng.uniform(20, 300), rng.uniform(20, 300)
        if rng.random() < 0.6:
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        else:
            mask[int(max(cy - ry, 0)) : int(cy + ry), int(max(cx - rx, 0)) : int(cx + rx)] = True
    return mask


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from pycocotools import mask as coco  # dev extra

    rng = np.random.default_rng(args.seed)
    masks = [realistic_mask(rng) for _ in range(args.masks)]
    fortran = [np.asfortranarray(m.astype(np.uint8)) for m in masks]
    ours_rles = [rle.encode(m) for m in masks]
    coco_rles = [coco.encode(f) for f in fortran]
    assert all(a.counts == b["counts"] for a, b in zip(ours_rles, coco_rles, strict=True))

    n = len(masks)
    enc_ours = best_of(args.repeat, lambda: [rle.encode(m) for m in masks]) / n
    enc_coco = best_of(args.repeat, lambda: [coco.encode(f) for f in fortran]) / n
    enc_coco_conv = (
        best_of(
            args.repeat, lambda: [coco.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
        )
        / n
    )
    dec_ours = best_of(args.repeat, lambda: [rle.decode(r) for r in ours_rles]) / n
    dec_coco = best_of(args.repeat, lambda: [coco.decode(r) for r in coco_rles]) / n
    runs = np.mean([len(rle.string_to_runs(r.counts)) for r in ours_rles])

    print(f"commit {commit()}  numpy {np.__version__}  {n} masks {W}x{H}, mean {runs:.0f} runs")
    print(
        f"encode  ours {enc_ours * 1e3:7.3f} ms   pycocotools {enc_coco * 1e3:7.3f} ms"
        f"   ratio {enc_coco / enc_ours:5.2f}x"
        f"   (with asfortranarray: {enc_coco_conv * 1e3:7.3f} ms, {enc_coco_conv / enc_ours:5.2f}x)"
    )
    print(
        f"decode  ours {dec_ours * 1e3:7.3f} ms   pycocotools {dec_coco * 1e3:7.3f} ms"
        f"   ratio {dec_coco / dec_ours:5.2f}x"
    )


if __name__ == "__main__":
    main()
