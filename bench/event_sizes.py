"""Encoded FrameResult sizes (protocols/ codec) for N objects, and NATS volume at 15 fps.

    python -m bench.event_sizes [--width 1920 --height 1080] [--objects 1 5 10 20 50]

Each object is an ellipse of about 2 % of the frame (a person at mid distance), so its COCO RLE
has a run pair per row it covers. Byte counts are exact for these masks; real masks with ragged
edges encode somewhat larger. Prints bytes per event and MB/s for one camera and for 1,000.
"""

from __future__ import annotations

import argparse
from fractions import Fraction

import numpy as np

from protocols import rle
from protocols.codec import encode
from protocols.events import FrameResult, ObjectMask, ObjectState


def frame_result(width: int, height: int, objects: int, seed: int = 0) -> FrameResult:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    masks = []
    for index in range(objects):
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        ax, ay = 0.05 * width, 0.12 * height  # ~2 % of the frame
        mask = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
        r = rle.encode(mask)
        x0, y0, x1, y1 = rle.bbox(r)
        masks.append(ObjectMask(index + 1, 0, 0.9, (float(x0), float(y0), float(x1), float(y1)),
                                rle.area(r), r, ObjectState.CONFIRMED))  # fmt: skip
    return FrameResult("cam0001", 1234, 5678, Fraction(1, 90000), 1, 2, width, height, tuple(masks))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--objects", type=int, nargs="+", default=[0, 1, 5, 10, 20, 50])
    args = parser.parse_args()
    print(f"{args.width}x{args.height}, {args.fps:g} fps")
    print("objects | bytes/event | KB/s one camera | MB/s 1,000 cameras")
    for n in args.objects:
        size = len(encode(frame_result(args.width, args.height, n)))
        per_cam = size * args.fps
        print(f"{n:7d} | {size:11d} | {per_cam / 1e3:15.1f} | {per_cam * 1000 / 1e6:18.1f}")


if __name__ == "__main__":
    main()
