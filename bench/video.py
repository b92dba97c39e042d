"""Time per frame of the online loop against the number of tracked objects, and against HF.

    python -m bench.video [--objects 1 4 16 64] [--frames 10] [--device cpu]

Both sides run the tiny config with the same random weights (the parity test's `build_pair`) on
the same frames. Detections are scripted (n squares on the mask grid, all spawned on frame 0) so
the object count is exact; everything after the detector head runs for real: backbone, tracker
propagation, association, memory encoding, output masks at the input size. HF runs
`Sam3VideoModel` in streaming mode (one `model(inference_session=..., frame=...)` call per frame,
plus `postprocess_outputs`). Timings exclude frame 0 (spawning) and a warm-up frame; CUDA is
synchronised before each clock read. The full `sam3` config is not run here on CPU: one 1008 px
frame takes tens of seconds there (reference §0), so a sweep would take hours.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
import torch

from model.types import Concept
from model.video import VideoTracker
from tests.model import test_parity_video as parity


def squares(n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n non-overlapping square detections on an m x m grid: probs (n,), logits (n, m, m)."""
    per_row = int(np.ceil(np.sqrt(n)))
    size = max(m // per_row - 1, 1)
    masks = []
    for k in range(n):
        y, x = divmod(k, per_row)
        mask = torch.full((m, m), -10.0)
        mask[y * (size + 1) : y * (size + 1) + size, x * (size + 1) : x * (size + 1) + size] = 10.0
        masks.append(mask)
    return torch.full((n,), 0.9), torch.stack(masks)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(n: int, frames: int, device: torch.device) -> tuple[float, float]:
    hf, ours = parity.build_pair()
    hf.to(device), ours.to(device)
    scores, logits = squares(n, parity.M)
    parity.scripted = lambda t: (scores, logits)  # the same n detections on every frame
    frame_model = parity.ScriptedDetector(ours)
    tracker = VideoTracker(frame_model, parity.VideoConfig(det_nms_thresh=0.0, fill_hole_area=0))
    tracker.add_concept(Concept(text="object"))
    session = parity.Sam3VideoInferenceSession(
        video_height=parity.HEIGHT, video_width=parity.WIDTH, dtype=torch.float32,
        inference_device=device,
    )  # fmt: skip
    session.add_prompt("object")
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (parity.HEIGHT, parity.WIDTH, 3), dtype=np.uint8)
        for _ in range(frames + 2)
    ]
    ours_s = hf_s = 0.0
    with torch.inference_mode():
        for t, image in enumerate(images):
            sync(device)
            start = time.perf_counter()
            tracker.step(image, pts=t)
            sync(device)
            mid = time.perf_counter()
            parity.hf_step(hf, session, frame_model.preprocess([image]), t)
            sync(device)
            end = time.perf_counter()
            if t >= 2:  # frame 0 spawns, frame 1 warms up
                ours_s += mid - start
                hf_s += end - mid
    return 1e3 * ours_s / frames, 1e3 * hf_s / frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # what the parity test's fixture patches: no torchvision here; the official mask-prompt path
    parity.processing_sam3_video.masks_to_boxes = parity.masks_to_boxes
    parity.tracker_video.Sam3TrackerVideoModel._use_mask_as_output = parity.official_mask_as_output
    device = torch.device(args.device)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"# bench/video.py  config=tiny  device={device}  dtype=float32  threads={args.threads}  commit={commit}"
    )
    print("| objects | ours ms/frame | HF Sam3VideoModel ms/frame | HF / ours |")
    print("|---:|---:|---:|---:|")
    for n in args.objects:
        ours_ms, hf_ms = run(n, args.frames, device)
        print(f"| {n} | {ours_ms:.1f} | {hf_ms:.1f} | {hf_ms / ours_ms:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
