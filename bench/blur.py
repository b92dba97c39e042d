"""Redaction cost on a 1080p frame (was an assertion in tests/streamer/test_blur.py; speed lives
here). Budget: under 40 ms for two masks and for redact_all, on one idle core.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python -m bench.blur
"""

from __future__ import annotations

import time

import numpy as np

from streamer.blur import RedactConfig, redact, redact_all


def disc(cx: int, cy: int, r: int, shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def main(repeats: int = 10) -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8)
    masks = [disc(600, 400, 150, (1080, 1920)), disc(1500, 800, 100, (1080, 1920))]
    config = RedactConfig(margin_px=8)
    redact(frame, masks, config)  # warm-up
    for name, run in (
        ("redact 2 masks", lambda: redact(frame, masks, config)),
        ("redact_all", lambda: redact_all(frame, config)),
    ):
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        print(
            f"1080p {name}: {(time.perf_counter() - started) / repeats * 1000:.1f} ms (budget 40)"
        )


if __name__ == "__main__":
    main()
