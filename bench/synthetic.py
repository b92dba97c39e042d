"""Synthetic source render cost: ms per 1080p frame (was an assertion in the tests; speed lives here).

PYTHONPATH=. .venv/bin/python -m bench.synthetic
"""

from __future__ import annotations

import time

from streamer.sources.synthetic import SyntheticConfig, SyntheticScene


def main(frames: int = 20) -> None:
    scene = SyntheticScene(SyntheticConfig(width=1920, height=1080))
    scene.render(0)  # warm-up
    started = time.perf_counter()
    for i in range(frames):
        scene.render(i)
    per_frame_ms = (time.perf_counter() - started) / frames * 1000
    print(f"synthetic 1080p render: {per_frame_ms:.2f} ms/frame (budget 15 ms on an idle core)")


if __name__ == "__main__":
    main()
