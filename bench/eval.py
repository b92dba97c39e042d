"""Evaluate a model on held-out concept-world data and print one table.

    python -m bench.eval                                   # the shipped embedded model
    python -m bench.eval --checkpoint runs/embedded/embedded.safetensors --images 200 --clips 24
    python -m bench.eval --calibrate    # the cgF1-best threshold on unseen TRAIN-split images
    python -m bench.eval --validate --clips 48   # video rows on unseen TRAIN-split clips

Images (SAM 3 paper metrics, at the model's own detection threshold,
`VideoConfig.score_threshold_detection`, 0.5 for SAM 3): cgF1 = 100 x pmF1 x IL_MCC on held-out seeds
(training phrases) and on held-out phrases (colour-shape pairs never named in training).
Video, through the live `VideoTracker` (no look-ahead): ID switches per 1,000 object-frames,
fragmentations and fragmented tracks, presence true/false positives per frame, mask IoU and
recall of tracked objects, on held-out clips with occlusions; and frames per second with five
live objects of one concept at the model's native resolution.

`--calibrate` and `--validate` measure on the validation set instead: training-split phrases and
generator at sample indices no training run reaches (`VALIDATION_FIRST_INDEX`). Choices made
while developing (thresholds, tracker rules, which run ships) are made there, so the held-out
table stays a test.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import time
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy.stats import chi2

from model import VideoTracker, build_sam3, inference_dtype
from model.build import DTYPES
from model.embedded.eval.bind import detect_fn
from model.embedded.eval.image_metrics import IOU_THRESHOLDS
from model.embedded.eval.runner import Detect, Track, evaluate_clips, evaluate_images
from model.embedded.eval.video_metrics import FrameObjects
from model.embedded.world import (
    VALIDATION_FIRST_INDEX,
    ClipConfig,
    ImageConfig,
    Shape,
    Split,
    WorldConfig,
    clip_sample,
)
from model.sam3 import Sam3
from model.types import Concept


def default_checkpoint() -> Path:
    return Path(str(resources.files("model") / "assets" / "embedded.safetensors"))


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__.split("\n")[0])
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="default: the shipped embedded model"
    )
    p.add_argument(
        "--model",
        default="embedded",
        help="config name (architecture and the video loop's thresholds), as `streamer --model`",
    )
    p.add_argument("--images", type=int, default=200, help="held-out images per split")
    p.add_argument("--prompts", type=int, default=2, help="phrases per image")
    p.add_argument("--clips", type=int, default=24, help="held-out clips (each tracked twice)")
    p.add_argument("--frames", type=int, default=48, help="frames per clip")
    p.add_argument("--fps-frames", type=int, default=60, help="frames of the 5-object speed run")
    p.add_argument(
        "--threshold", type=float, default=None, help="default: the model's detection threshold"
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="sweep score thresholds on training-split images never used in training, print them",
    )
    p.add_argument(
        "--validate",
        action="store_true",
        help="print only the video rows, on training-split clips never used in training",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", *DTYPES],
        help="auto: bfloat16 where the device computes it natively (as `streamer --dtype`)",
    )
    return p.parse_args()


def tracker_fn(model: Sam3) -> Track:
    """A `Track` callable: a fresh VideoTracker per run, one text concept, every published object."""

    def track(frames: Iterable[np.ndarray], text: str) -> Iterator[FrameObjects]:
        tracker = VideoTracker(model)
        tracker.add_concept(Concept(text=text))
        for image in frames:
            result = tracker.step(image)
            h, w = image.shape[:2]
            objs = result.objects
            yield FrameObjects(
                ids=np.array([o.object_id for o in objs], np.int64),
                masks=np.stack([o.mask for o in objs]) if objs else np.zeros((0, h, w), bool),
            )

    return track


def live_fps(model: Sam3, side: int, frames: int) -> tuple[float, float]:
    """Frames per second and mean live objects tracking "circle" over five circles."""
    config = ClipConfig(
        world=WorldConfig(height=side, width=side),
        num_frames=frames,
        num_objects=(5, 5),
        passer_rate=0.0,
        occluder_rate=0.0,
        shape=Shape.CIRCLE,
    )
    clip = clip_sample(Split.HELD_OUT_SEEDS, 10_000, config)
    tracker = VideoTracker(model)
    tracker.add_concept(Concept(text="circle"))
    warmup = min(5, frames // 4)
    live: list[int] = []
    for f in clip.frames[:warmup]:
        tracker.step(f.image)
    start = time.perf_counter()
    for f in clip.frames[warmup:]:
        live.append(len(tracker.step(f.image).objects))
    elapsed = time.perf_counter() - start
    return (frames - warmup) / elapsed, float(np.mean(live))


def calibrate(detect: Detect, images: ImageConfig, count: int, prompts: int) -> None:
    """cgF1 per score threshold on a validation set: training-split phrases and generator, sample
    indices no training run reaches. The best one is a model's operating point."""
    print("| threshold | cgF1 | pmF1 | IL_MCC (P / R) |\n|---|---|---|---|")
    for threshold in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7):
        m = evaluate_images(
            detect, Split.TRAIN, count, images, prompts, threshold, VALIDATION_FIRST_INDEX
        )
        print(
            f"| {threshold:.2f} | {m.cgf1:.1f} | {m.pmf1:.3f} | "
            f"{m.il_mcc:.3f} ({m.il_precision:.2f} / {m.il_recall:.2f}) |",
            flush=True,
        )


def switches_upper_bound(switches: int, object_frames: int) -> float:
    """Exact one-sided 95 % Poisson upper bound on ID switches per 1,000 object-frames: a few
    switches in a few hundred object-frames say little about a goal of one per thousand."""
    return 1000.0 * float(chi2.ppf(0.95, 2 * switches + 2)) / 2 / max(object_frames, 1)


def video_rows(
    track: Track, split: Split, count: int, config: ClipConfig, first_index: int = 0
) -> list[tuple[str, str]]:
    """The video rows of the table: `count` clips of `split`, each tracked twice."""
    clips = evaluate_clips(track, split, count, config, first_index)
    pos, neg = clips.positive, clips.negative
    return [
        ("video: object-frames (GT tracks)", f"{pos.object_frames} ({pos.gt_tracks})"),
        (
            "video: ID switches per 1,000 object-frames",
            f"{pos.id_switches_per_1k:.2f} ({pos.id_switches} switches; 95 % upper bound "
            f"{switches_upper_bound(pos.id_switches, pos.object_frames):.1f})",
        ),
        (
            "video: fragmentations / fragmented tracks",
            f"{pos.fragmentations} / {pos.fragmented_tracks}",
        ),
        ("video: mask IoU of tracked objects / recall", f"{pos.mean_iou:.3f} / {pos.recall:.3f}"),
        ("video: unmatched predicted object-frames", f"{pos.unmatched_predictions}"),
        (
            "video: presence TP / FN frames (phrase present)",
            f"{pos.presence_tp} / {pos.presence_fn}",
        ),
        (
            "video: presence FP / TN frames (phrase absent)",
            f"{neg.presence_fp + pos.presence_fp} / {neg.presence_tn + pos.presence_tn}",
        ),
        ("video: fps over evaluation clips", f"{clips.fps:.1f}"),
    ]


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or default_checkpoint()
    dtype = inference_dtype(args.device, args.dtype)
    model = build_sam3(args.model, checkpoint, device=args.device, dtype=dtype).eval()
    side = model.config.vit.image_size
    world = WorldConfig(height=side, width=side)
    images = ImageConfig(world=world)
    detect = detect_fn(model.detector, model.tokenizer, side)
    clips_config = ClipConfig(world=world, num_frames=args.frames)
    if args.calibrate:
        calibrate(detect, images, args.images, args.prompts)
        return
    stamp = datetime.date.today().isoformat()
    title = (
        f"{checkpoint.name} ({model.config.name}, {sum(p.numel() for p in model.parameters()):,} params) "
        f"on {args.device} x{args.threads} threads, {str(dtype).removeprefix('torch.')}, {side}x{side}; commit {_commit()}, {stamp}"
    )
    if args.validate:
        rows = video_rows(
            tracker_fn(model), Split.TRAIN, args.clips, clips_config, VALIDATION_FIRST_INDEX
        )
        _print_table(f"{title}; validation clips", rows)
        return
    threshold = args.threshold or model.config.video.score_threshold_detection
    rows: list[tuple[str, str]] = [("image score threshold", f"{threshold:.2f}")]
    for split in (Split.HELD_OUT_SEEDS, Split.HELD_OUT_PHRASES):
        m = evaluate_images(detect, split, args.images, images, args.prompts, threshold)
        by_iou = dict(zip(IOU_THRESHOLDS.tolist(), m.pmf1_by_iou, strict=True))
        rows += [
            (f"{split.value}: cgF1", f"{m.cgf1:.1f}"),
            (f"{split.value}: pmF1 (IoU 0.5:0.95) / pmF1@0.5", f"{m.pmf1:.3f} / {m.pmf1_50:.3f}"),
            (
                f"{split.value}: pmF1 at IoU 0.75 / 0.85 / 0.9 / 0.95",
                " / ".join(f"{by_iou[t]:.3f}" for t in (0.75, 0.85, 0.9, 0.95)),
            ),
            (
                f"{split.value}: IL_MCC (P / R)",
                f"{m.il_mcc:.3f} ({m.il_precision:.2f} / {m.il_recall:.2f})",
            ),
            (f"{split.value}: image-phrase pairs (+ / -)", f"{m.positives} / {m.negatives}"),
        ]
    rows += video_rows(tracker_fn(model), Split.HELD_OUT_SEEDS, args.clips, clips_config)
    fps, live = live_fps(model, side, args.fps_frames)
    rows.append(
        (f"live fps, 5 objects of one concept ({live:.1f} tracked on average)", f"{fps:.1f}")
    )
    _print_table(title, rows)


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}\n")
    width = max(len(k) for k, _ in rows)
    print(f"| {'metric'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")


if __name__ == "__main__":
    main()
