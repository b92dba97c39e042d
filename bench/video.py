"""Time per frame of the online loop against the number of tracked objects, and against HF.

    python -m bench.video [--objects 1 4 16 64] [--frames 10] [--device cpu]
    python -m bench.video --config sam3 --objects 10 --device cuda --dtype bfloat16   # ours only

Both sides run the tiny config with the same random weights (the parity test's `build_pair`) on
the same frames. Detections are scripted (n squares on the mask grid, all spawned on frame 0) so
the object count is exact; everything after the detector head runs for real: backbone, tracker
propagation, association, memory encoding, output masks at the input size. HF runs
`Sam3VideoModel` in streaming mode (one `model(inference_session=..., frame=...)` call per frame,
plus `postprocess_outputs`). Timings exclude frame 0 (spawning) and a warm-up frame; CUDA is
synchronised before each clock read. The full `sam3` config is not run against HF on CPU: one
1008 px frame takes tens of seconds there (reference §0), so a sweep would take hours.

`--config NAME` (any other config) times ours alone, whole: that config's packaged weights, else
random ones, on 1280 x 720 frames, the real detector run on every frame for its cost and its
output then replaced by the n scripted squares so the object count is exact.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from bench import sdpa
from model.build import build_sam3
from model.config import VideoConfig
from model.types import Concept
from model.video.frame_model import FrameDetections
from model.video.sam3_frame_model import Sam3FrameModel
from model.video.video_tracker import VideoTracker


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


class RealCostSquares(Sam3FrameModel):
    """The real detector runs (its cost is counted); its output is swapped for n squares."""

    def __init__(self, model: object, n: int) -> None:
        super().__init__(model)
        scores, logits = squares(n, self.mask_size)
        p = self._param
        self.squares = FrameDetections(
            scores.to(p.device), logits.to(p.device), torch.zeros(n, 4, device=p.device)
        )  # made once: the bench's own scripting is not timed

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        real = super().detect(features, concepts)
        return [FrameDetections(*(x.to(real[0].mask_logits.dtype) for x in self.squares))]


def timed(device: torch.device, step: Callable[[], object]) -> float:
    """Seconds `step()` takes, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - start


def random_frames(height: int, width: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def run_ours(config: str, n: int, frames: int, device: torch.device, dtype: torch.dtype) -> float:
    """ms per frame of the whole loop at `config` size with n objects."""
    torch.manual_seed(0)
    tracker = VideoTracker(
        RealCostSquares(build_sam3(config, device=device, dtype=dtype).eval(), n),
        VideoConfig(det_nms_thresh=0.0, fill_hole_area=0),
    )
    tracker.add_concept(Concept(text="object"))
    total = 0.0
    with torch.inference_mode():
        for t, image in enumerate(random_frames(720, 1280, frames + 2)):
            seconds = timed(device, lambda: tracker.step(image, pts=t))  # noqa: B023 (called at once)
            if t >= 2:  # frame 0 spawns, frame 1 warms up
                total += seconds
    return 1e3 * total / frames


def run(n: int, frames: int, device: torch.device) -> tuple[float, float]:
    from tests.model import test_parity_video as parity

    # what the parity test's fixture patches: no torchvision here; the official mask-prompt path
    parity.processing_sam3_video.masks_to_boxes = parity.masks_to_boxes
    parity.tracker_video.Sam3TrackerVideoModel._use_mask_as_output = parity.official_mask_as_output
    hf, ours = parity.build_pair()
    hf.to(device), ours.to(device)
    scores, logits = squares(n, parity.M)
    parity.scripted = lambda t: (scores, logits)  # the same n detections on every frame
    frame_model = parity.ScriptedDetector(ours)
    tracker = VideoTracker(frame_model, VideoConfig(det_nms_thresh=0.0, fill_hole_area=0))
    tracker.add_concept(Concept(text="object"))
    session = parity.Sam3VideoInferenceSession(
        video_height=parity.HEIGHT, video_width=parity.WIDTH, dtype=torch.float32,
        inference_device=device,
    )  # fmt: skip
    session.add_prompt("object")
    ours_s = hf_s = 0.0
    with torch.inference_mode():
        for t, image in enumerate(random_frames(parity.HEIGHT, parity.WIDTH, frames + 2)):
            a = timed(device, lambda: tracker.step(image, pts=t))  # noqa: B023
            b = timed(  # HF's time includes preprocessing its input
                device,
                lambda: parity.hf_step(hf, session, frame_model.preprocess([image]), t),  # noqa: B023
            )
            if t >= 2:  # frame 0 spawns, frame 1 warms up
                ours_s += a
                hf_s += b
    return 1e3 * ours_s / frames, 1e3 * hf_s / frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default="tiny", help="tiny: ours and HF; any other: ours only")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    sdpa.add_option(parser)
    args = parser.parse_args()
    sdpa.restrict(args.sdpa)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# bench/video.py  config={args.config}  device={device} ({name})  dtype={args.dtype}  "
        f"threads={args.threads}  torch={torch.__version__}  commit={commit}  "
        f"sdpa={args.sdpa or 'default'}"
    )
    if args.config != "tiny":
        print("| objects | ours ms/frame | frames/s |")
        print("|---:|---:|---:|")
        for n in args.objects:
            ms = run_ours(args.config, n, args.frames, device, getattr(torch, args.dtype))
            print(f"| {n} | {ms:.1f} | {1e3 / ms:.1f} |", flush=True)
        return
    if args.dtype != "float32":
        raise SystemExit("the HF comparison runs in float32 (parity weights)")
    print("| objects | ours ms/frame | HF Sam3VideoModel ms/frame | HF / ours |")
    print("|---:|---:|---:|---:|")
    for n in args.objects:
        ours_ms, hf_ms = run(n, args.frames, device)
        print(f"| {n} | {ours_ms:.1f} | {hf_ms:.1f} | {hf_ms / ours_ms:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
