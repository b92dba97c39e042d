"""Train the embedded model on the concept world: `python -m model.train`.

    python -m model.train --out runs/embedded            # fresh run (detector, then tracker)
    python -m model.train --out runs/embedded --resume   # continue from runs/embedded/last.pt
    python -m model.train --out runs/embedded --resume --export model/assets/embedded.safetensors

This is the script layer: it owns every file it reads and writes (the resumable training state
`last.pt`, the log lines on stdout, the exported checkpoint). The library modules it calls are
pure. Samples are drawn by index from the training split, so a resumed run sees exactly the
batches an uninterrupted one would have.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from model.checkpoint import save_native
from model.config import CONFIGS
from model.eval.bind import detect_fn
from model.eval.runner import evaluate_images
from model.sam3 import Sam3
from model.train.data import detection_batch
from model.train.train_detector import DetectorSchedule, detector_step, make_optimizer
from model.train.vocab import FOREIGN_WORDS, world_tokenizer
from model.world import ImageConfig, Split

STATE_FILE = "last.pt"


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/embedded"), help="run folder")
    p.add_argument("--resume", action="store_true", help=f"continue from OUT/{STATE_FILE}")
    p.add_argument("--config", default="embedded", choices=sorted(CONFIGS))
    p.add_argument("--detector-steps", type=int, default=DetectorSchedule.steps)
    p.add_argument("--batch", type=int, default=DetectorSchedule.batch_images)
    p.add_argument("--prompts", type=int, default=DetectorSchedule.prompts_per_image)
    p.add_argument("--lr", type=float, default=DetectorSchedule.lr)
    p.add_argument("--aux-repeats", type=int, default=DetectorSchedule.aux_repeats)
    p.add_argument("--foreign-rate", type=float, default=0.1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=float, default=300.0, help="seconds between saves")
    p.add_argument("--eval-every", type=int, default=250, help="steps between quick evals")
    p.add_argument("--eval-images", type=int, default=48)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--export", type=Path, help="write the final weights here (.safetensors)")
    return p.parse_args()


def _save(path: Path, model: Sam3, optimizer: torch.optim.Optimizer, phase: str, step: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "phase": phase,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: an interrupted save never corrupts the last good state


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    config = CONFIGS[args.config]
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / STATE_FILE

    tokenizer = world_tokenizer(config.text.context_length)
    model = Sam3(config, device=device)
    schedule = dataclasses.replace(
        DetectorSchedule(),
        steps=args.detector_steps,
        batch_images=args.batch,
        prompts_per_image=args.prompts,
        lr=args.lr,
        aux_repeats=args.aux_repeats,
    )
    optimizer = make_optimizer(model.detector, schedule.lr, schedule.weight_decay)
    phase, step = "detector", 0
    if args.resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        if state["phase"] == "detector":
            optimizer.load_state_dict(state["optimizer"])
        phase, step = state["phase"], int(state["step"])
        print(f"resumed {state_path}: phase {phase}, step {step}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"config {config.name}: {n_params:,} parameters on {device}; {schedule}", flush=True)

    image_config = ImageConfig()
    image_size = config.vit.image_size
    last_save = time.monotonic()
    if phase == "detector":
        window_start, window_images = time.monotonic(), 0
        while step < schedule.steps:
            first = step * schedule.batch_images
            batch = detection_batch(
                Split.TRAIN,
                range(first, first + schedule.batch_images),
                image_config,
                schedule.prompts_per_image,
                args.foreign_rate,
                FOREIGN_WORDS,
            ).to(device)
            tokens = tokenizer(list(batch.texts))
            tokens = type(tokens)(tokens.ids.to(device), tokens.padding_mask.to(device))
            terms = detector_step(model.detector, optimizer, batch, tokens, schedule, step)
            step += 1
            window_images += schedule.batch_images
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
                m = evaluate_images(
                    detect_fn(model.detector, tokenizer, image_size),
                    Split.HELD_OUT_SEEDS,
                    args.eval_images,
                )
                print(
                    f"eval {step}: cgF1 {m.cgf1:.1f} pmF1 {m.pmf1:.3f} (@0.5 {m.pmf1_50:.3f}) "
                    f"IL_MCC {m.il_mcc:.3f} IL P/R {m.il_precision:.2f}/{m.il_recall:.2f}",
                    flush=True,
                )
            if time.monotonic() - last_save > args.save_every or step == schedule.steps:
                _save(state_path, model, optimizer, "detector", step)
                last_save = time.monotonic()
        phase, step = "done", 0
        _save(state_path, model, optimizer, phase, step)

    if args.export is not None:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        save_native(args.export, model.cpu(), config, tokenizer_files=tokenizer.to_files())
        print(f"exported {args.export} ({args.export.stat().st_size / 1e6:.1f} MB)", flush=True)


if __name__ == "__main__":
    main()
