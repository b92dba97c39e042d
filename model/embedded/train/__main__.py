"""Train the embedded model on the concept world: `python -m model.embedded.train`.

    python -m model.embedded.train --out runs/embedded            # fresh run (detector, then tracker)
    python -m model.embedded.train --out runs/embedded --resume   # continue from runs/embedded/last.pt
    python -m model.embedded.train --out runs/embedded --resume --export model/assets/embedded.safetensors

This is the script layer: it owns every file it reads and writes (the resumable training state
`last.pt`, the log lines on stdout, the exported checkpoint). The library modules it calls are
pure. Samples are drawn by index from the training split, so a resumed run sees exactly the
batches an uninterrupted one would have; `--first-sample` moves a run chained with `--init` onto
images and clips the runs before it never read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from model.backbone.tokenizer import TokenBatch, Tokenizer
from model.build import build_sam3
from model.checkpoint.native import save_native
from model.config import CONFIGS
from model.embedded.eval.bind import detect_fn
from model.embedded.eval.runner import evaluate_images
from model.embedded.train.data import DetectionBatch, DetectionStream
from model.embedded.train.train_detector import DetectorSchedule, detector_step, make_optimizer
from model.embedded.train.train_tracker import (
    ClipTargets,
    TrackerSchedule,
    clip_targets,
    tracker_parameters,
    tracker_step,
)
from model.embedded.vocab import FOREIGN_WORDS, world_tokenizer
from model.embedded.world import (
    VALIDATION_FIRST_INDEX,
    ClipConfig,
    ImageConfig,
    Split,
    WorldConfig,
    clip_sample,
)
from model.sam3 import Sam3

STATE_FILE = "last.pt"


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m model.embedded.train", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, default=Path("runs/embedded"), help="run folder")
    p.add_argument("--resume", action="store_true", help=f"continue from OUT/{STATE_FILE}")
    p.add_argument(
        "--init",
        type=Path,
        help="start from these weights (an earlier run's last.pt, or an exported .safetensors "
        "such as the shipped model), with fresh schedules: longer training after a run",
    )
    p.add_argument("--config", default="embedded", choices=sorted(CONFIGS))
    p.add_argument("--detector-steps", type=int, default=DetectorSchedule.steps)
    p.add_argument(
        "--minutes",
        type=float,
        help="size the detector phase to end in about this many minutes from start-up, from "
        "the speed of its first steps (at most --detector-steps; the count is printed)",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        help="end the detector phase at this step, keeping the learning-rate schedule of "
        "--detector-steps (the state is saved; continue with --init)",
    )
    p.add_argument("--batch", type=int, default=DetectorSchedule.batch_images)
    p.add_argument("--prompts", type=int, default=DetectorSchedule.prompts_per_image)
    p.add_argument("--lr", type=float, default=DetectorSchedule.lr)
    p.add_argument("--aux-repeats", type=int, default=DetectorSchedule.aux_repeats)
    p.add_argument("--foreign-rate", type=float, default=0.1)
    p.add_argument("--tracker-steps", type=int, default=TrackerSchedule.steps)
    p.add_argument(
        "--stop-tracker-after",
        type=int,
        help="end the tracker phase at this step (the state is saved; continue with --resume)",
    )
    p.add_argument("--clip-frames", type=int, default=TrackerSchedule.clip_frames)
    p.add_argument("--tracker-lr", type=float, default=TrackerSchedule.lr)
    p.add_argument(
        "--freeze-trunk",
        action="store_true",
        help="detector phase: keep the image trunk fixed (the tracker reads its features, so its "
        "inputs stay as it was trained on); give it again with --resume",
    )
    p.add_argument("--fp32", action="store_true", help="no bfloat16 autocast (it is on by default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # one thread: on a shared, oversubscribed CPU, 2 OpenMP threads ran 10x slower (barrier waits)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that render training images ahead of the model (0: the training "
        "process renders them; on a GPU, one core cannot keep up)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--first-sample",
        type=int,
        default=0,
        help="index of the first training image and clip (every run reads from there up; a run "
        "chained with --init reads fresh samples when this is past what earlier runs read)",
    )
    p.add_argument("--save-every", type=float, default=300.0, help="seconds between saves")
    p.add_argument("--eval-every", type=int, default=250, help="steps between quick evals")
    p.add_argument("--eval-images", type=int, default=48)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--export", type=Path, help="write the final weights here (.safetensors)")
    p.add_argument(
        "--export-only",
        action="store_true",
        help="with --resume: export the saved state as it is (mid-run snapshots), train nothing",
    )
    return p.parse_args()


def _save(
    path: Path,
    model: Sam3,
    optimizer: torch.optim.Optimizer,
    phase: str,
    step: int,
    first_sample: int,
    next_clip: int | None,
) -> None:
    tmp = path.with_suffix(".tmp")
    assert model.tokenizer is not None  # build_sam3 always sets one
    torch.save(
        {
            "phase": phase,
            "step": step,
            "first_sample": first_sample,
            "next_clip": next_clip,  # the tracker phase's next clip index (it skips empty clips)
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "tokenizer": model.tokenizer.to_files(),  # so the state also works as --checkpoint
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: an interrupted save never corrupts the last good state


class _Saver:
    """Writes the resumable state at most every `every` seconds (and when forced)."""

    def __init__(self, path: Path, every: float, first_sample: int) -> None:
        self.path, self.every, self.last = path, every, time.monotonic()
        self.first_sample = first_sample

    def __call__(
        self,
        model: Sam3,
        optimizer: torch.optim.Optimizer,
        phase: str,
        step: int,
        force: bool = False,
        next_clip: int | None = None,
    ) -> None:
        if force or time.monotonic() - self.last > self.every:
            _save(self.path, model, optimizer, phase, step, self.first_sample, next_clip)
            self.last = time.monotonic()


class _Sizing:
    """Sets a run's step count from its own speed, so it ends in about `minutes` (--minutes).

    Steps SKIP..STEPS are timed. The first ones run fast or slow for reasons that do not last
    (batches the workers rendered ahead during start-up; CUDA kernels being chosen): timing
    steps 10-40 on an H100 overestimated the speed by a quarter. STEPS lies inside the
    learning-rate warm-up, which does not depend on the step count, so fixing the count there
    changes no step already taken.
    """

    SKIP, STEPS = 60, 150
    RESERVE = 0.08  # of the budget, kept for evaluations, the final save and the export

    def __init__(self, minutes: float, started: float) -> None:
        self.deadline = started + 60 * minutes * (1 - self.RESERVE)
        self.t_skip = 0.0

    def after_step(self, step: int) -> int | None:
        """The total step count once `step` == STEPS, else None."""
        if step == self.SKIP:
            self.t_skip = time.monotonic()
        if step != self.STEPS:
            return None
        now = time.monotonic()
        per_step = (now - self.t_skip) / (self.STEPS - self.SKIP)
        return self.STEPS + max(int((self.deadline - now) / per_step), 0)


def _detector_phase(
    args: argparse.Namespace,
    model: Sam3,
    tokenizer: Tokenizer,
    state: dict[str, Any] | None,
    save: _Saver,
) -> None:
    schedule = dataclasses.replace(
        DetectorSchedule(),
        steps=args.detector_steps,
        batch_images=args.batch,
        prompts_per_image=args.prompts,
        lr=args.lr,
        aux_repeats=args.aux_repeats,
        bf16=not args.fp32,
    )
    print(f"detector phase: {schedule}", flush=True)
    model.detector.backbone.vision_backbone.trunk.requires_grad_(not args.freeze_trunk)
    optimizer = make_optimizer(model.detector, schedule.lr, schedule.weight_decay)
    step = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    device = torch.device(args.device)
    side = model.config.vit.image_size
    image_config = ImageConfig(world=WorldConfig(height=side, width=side))
    window_start, window_images = time.monotonic(), 0
    last_step = min(
        schedule.steps, args.stop_after if args.stop_after is not None else schedule.steps
    )
    stream = DetectionStream(
        Split.TRAIN,
        args.first_sample,
        schedule.batch_images,
        image_config,
        schedule.prompts_per_image,
        args.foreign_rate,
        tuple(FOREIGN_WORDS),
    )
    sizing = _Sizing(args.minutes, args.started) if args.minutes is not None else None
    if sizing is not None and step > 0:
        raise SystemExit("--minutes sizes a fresh run; resume with the --detector-steps it printed")

    def batches() -> Iterator[DetectionBatch]:
        # lazily: with --minutes, the second range is read after the sizing steps have set it
        end = min(_Sizing.STEPS, last_step) if sizing is not None else last_step
        yield from stream.batches(range(step, end), args.workers)
        yield from stream.batches(range(end, last_step), args.workers)

    for cpu_batch in batches():
        batch = cpu_batch.to(device)
        tokens = tokenizer(list(batch.texts))
        tokens = TokenBatch(tokens.ids.to(device), tokens.padding_mask.to(device))
        terms = detector_step(model.detector, optimizer, batch, tokens, schedule, step)
        step += 1
        window_images += schedule.batch_images
        if sizing is not None and (sized := sizing.after_step(step)) is not None:
            schedule = dataclasses.replace(schedule, steps=min(schedule.steps, sized))
            last_step = min(last_step, schedule.steps)
            print(f"--minutes {args.minutes:g}: {schedule.steps} detector steps", flush=True)
        if step % args.log_every == 0:
            rate = window_images / (time.monotonic() - window_start)
            window_start, window_images = time.monotonic(), 0
            print(
                f"det {step}/{schedule.steps} loss {terms.total.item():.3f} score {terms.score:.3f} "
                f"l1 {terms.box_l1:.3f} giou {terms.box_giou:.3f} mfocal {terms.mask_focal:.4f} "
                f"dice {terms.mask_dice:.3f} pres {terms.presence:.3f} sem {terms.semantic:.3f} "
                f"lr {optimizer.param_groups[0]['lr']:.2e} {rate:.1f} img/s",
                flush=True,
            )
        if step % args.eval_every == 0 or step == schedule.steps:
            detect = detect_fn(model.detector, tokenizer, model.config.vit.image_size)
            m = evaluate_images(detect, Split.HELD_OUT_SEEDS, args.eval_images, image_config)
            print(
                f"eval {step}: cgF1 {m.cgf1:.1f} pmF1 {m.pmf1:.3f} (@0.5 {m.pmf1_50:.3f}) "
                f"IL_MCC {m.il_mcc:.3f} IL P/R {m.il_precision:.2f}/{m.il_recall:.2f}",
                flush=True,
            )
        save(model, optimizer, "detector", step, force=step == last_step)


def _tracker_phase(
    args: argparse.Namespace, model: Sam3, state: dict[str, Any] | None, save: _Saver
) -> None:
    schedule = dataclasses.replace(
        TrackerSchedule(),
        steps=args.tracker_steps,
        clip_frames=args.clip_frames,
        lr=args.tracker_lr,
    )
    print(f"tracker phase: {schedule}", flush=True)
    optimizer = torch.optim.AdamW(
        tracker_parameters(model.detector, model.tracker),
        lr=schedule.lr,
        weight_decay=schedule.weight_decay,
    )
    step = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    device = torch.device(args.device)
    side = model.config.vit.image_size
    world = ClipConfig(world=WorldConfig(height=side, width=side), num_frames=schedule.clip_frames)
    # clips without objects on frame 0 are skipped, so the next index is saved with the state
    # (states from before it was saved resume at the bound _check_samples allows)
    index = args.first_sample + step * schedule.clips_per_step * 2
    if state is not None and state.get("next_clip") is not None:
        index = int(state["next_clip"])
    stop = args.stop_tracker_after
    last_step = min(schedule.steps, stop if stop is not None else schedule.steps)
    while step < last_step:
        clips: list[ClipTargets] = []
        while len(clips) < schedule.clips_per_step:
            targets = clip_targets(clip_sample(Split.TRAIN, index, world))
            index += 1
            if targets is not None:
                clips.append(ClipTargets(*(t.to(device) for t in dataclasses.astuple(targets))))
        terms = tracker_step(model.detector, model.tracker, optimizer, clips, schedule, step)
        step += 1
        if step % args.log_every == 0:
            print(
                f"trk {step}/{schedule.steps} loss {terms.total.item():.3f} mfocal {terms.mask_focal:.4f} "
                f"dice {terms.mask_dice:.3f} objscore {terms.object_score:.3f} iou-l1 {terms.iou:.3f} "
                f"mask IoU {terms.mean_iou:.3f} lr {optimizer.param_groups[0]['lr']:.2e}",
                flush=True,
            )
        save(model, optimizer, "tracker", step, force=step == last_step, next_clip=index)


def _check_samples(args: argparse.Namespace) -> None:
    """Training indices must stay below the validation stream (bench.eval --calibrate)."""
    last_image = args.first_sample + args.detector_steps * args.batch
    # the tracker phase allows 2 clip indices per clip (some are skipped); bound it by twice that
    last_clip = args.first_sample + 4 * args.tracker_steps * TrackerSchedule.clips_per_step
    if args.first_sample < 0 or max(last_image, last_clip) > VALIDATION_FIRST_INDEX:
        raise SystemExit(
            f"--first-sample {args.first_sample}: training would read samples up to "
            f"{max(last_image, last_clip):,}; keep them in [0, {VALIDATION_FIRST_INDEX:,}), "
            "which validation reads from"
        )


def main() -> None:
    args = _parse()
    args.started = time.monotonic()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    config = CONFIGS[args.config]
    args.out.mkdir(parents=True, exist_ok=True)
    _check_samples(args)
    save = _Saver(args.out / STATE_FILE, args.save_every, args.first_sample)

    tokenizer = world_tokenizer(config.text.context_length)
    model = Sam3(config, device=device)
    model.tokenizer = tokenizer  # saved with every state
    n_params = sum(p.numel() for p in model.parameters())
    print(f"config {config.name}: {n_params:,} parameters on {device}", flush=True)
    state = None
    if args.init is not None and not (args.resume and save.path.exists()):
        if args.init.suffix == ".safetensors":  # an exported checkpoint, through the real loader
            model.load_state_dict(build_sam3(config, checkpoint=args.init).state_dict())
            print(f"initialised from {args.init}", flush=True)
        else:
            init = torch.load(args.init, map_location=device, weights_only=True)
            model.load_state_dict(init["model"])
            print(f"initialised from {args.init} ({init['phase']} step {init['step']})", flush=True)
    if args.resume and save.path.exists():
        state = torch.load(save.path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        print(f"resumed {save.path}: phase {state['phase']}, step {state['step']}", flush=True)
        saved_first = int(state.get("first_sample", 0))
        if saved_first != args.first_sample:
            raise SystemExit(
                f"{save.path} was trained with --first-sample {saved_first}, not "
                f"{args.first_sample}: resume with the same value"
            )
    phase = state["phase"] if state is not None else "detector"
    if args.export_only:
        if state is None or args.export is None:
            raise SystemExit("--export-only needs --resume, a saved state and --export")
        phase = "export"
    if phase == "detector":
        _detector_phase(args, model, tokenizer, state, save)
        if args.stop_after is not None and args.stop_after < args.detector_steps:
            print(f"stopped after detector step {args.stop_after}", flush=True)
            return
        phase, state = "tracker", None
    if phase == "tracker":
        _tracker_phase(args, model, state, save)
        if args.stop_tracker_after is not None and args.stop_tracker_after < args.tracker_steps:
            print(f"stopped after tracker step {args.stop_tracker_after}", flush=True)
            return
        phase = "done"
        save(model, torch.optim.AdamW(model.parameters()), phase, 0, force=True)
    if args.export is not None:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        save_native(args.export, model.cpu(), config, tokenizer_files=tokenizer.to_files())
        print(f"exported {args.export} ({args.export.stat().st_size / 1e6:.1f} MB)", flush=True)


if __name__ == "__main__":
    main()
