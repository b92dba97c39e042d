"""Which clips make ID switches, and on which frames: the diagnosis behind bench/eval.py's count.

    python -m bench.switches                      # the shipped model, 120 held-out clips
    python -m bench.switches --validate --clips 144
    python -m bench.switches --checkpoint runs/x/embedded.safetensors --first 23 --clips 1 --frames

For every clip tracked with its positive phrase (as bench/eval.py does), prints the clips with
switches, the frames on which each switch is counted, and with `--frames` every frame's ground
truth and published objects (ids and mask areas), the start of a frame-by-frame reading.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.eval import default_checkpoint, tracker_fn
from model import build_sam3, inference_dtype
from model.embedded.eval.runner import visible_targets
from model.embedded.eval.video_metrics import FrameObjects, count_clip
from model.embedded.world import (
    VALIDATION_FIRST_INDEX,
    ClipConfig,
    Split,
    WorldConfig,
    clip_phrases,
    clip_sample,
)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.switches", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    p.add_argument("--model", default="embedded", help="config name of the checkpoint")
    p.add_argument("--validate", action="store_true", help="validation clips, not held-out ones")
    p.add_argument(
        "--first", type=int, default=0, help="first clip, counted from the split's start"
    )
    p.add_argument("--clips", type=int, default=120)
    p.add_argument("--num-frames", type=int, default=48, help="frames per clip")
    p.add_argument(
        "--frames", action="store_true", help="print every frame of a clip with switches"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="auto")
    return p.parse_args()


def switch_frames(truth: list[FrameObjects], predicted: list[FrameObjects]) -> list[int]:
    """The frames on which `count_clip` counts a switch (one entry per switch)."""
    frames, before = [], 0
    for t in range(len(truth)):
        now = count_clip(truth[: t + 1], predicted[: t + 1]).id_switches
        frames += [t] * (now - before)
        before = now
    return frames


def _describe(objects: FrameObjects) -> str:
    return " ".join(
        f"{i}:{int(m.sum())}px" for i, m in zip(objects.ids, objects.masks, strict=True)
    )


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    dtype = inference_dtype("cpu", args.dtype)
    model = build_sam3(args.model, args.checkpoint or default_checkpoint(), dtype=dtype).eval()
    side = model.config.vit.image_size
    config = ClipConfig(world=WorldConfig(height=side, width=side), num_frames=args.num_frames)
    split = Split.TRAIN if args.validate else Split.HELD_OUT_SEEDS
    start = (VALIDATION_FIRST_INDEX if args.validate else 0) + args.first
    track, allowed = tracker_fn(model), set(split.phrases())
    total = object_frames = 0
    for index in range(start, start + args.clips):
        clip = clip_sample(split, index, config)
        phrase, _ = clip_phrases(clip, split.rng(index, stream=2), allowed)
        if phrase is None:
            continue
        truth = visible_targets(clip.frames, phrase)
        predicted = list(track(iter([f.image for f in clip.frames]), phrase.text))
        object_frames += sum(len(g.ids) for g in truth)
        frames = switch_frames(truth, predicted)
        total += len(frames)
        if not frames:
            continue
        print(f"clip {index} {phrase.text!r}: {len(frames)} ID switches, on frames {frames}")
        for t, (g, p) in enumerate(zip(truth, predicted, strict=True)) if args.frames else ():
            print(
                f"  f{t}{' *' if t in frames else ''}: truth {_describe(g)} | published {_describe(p)}"
            )
    print(f"{total} ID switches in {object_frames:,} object-frames ({args.clips} clips)")


if __name__ == "__main__":
    main()
