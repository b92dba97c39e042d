"""`python -m model.embedded.train` end to end on the tiny config: export, strict load, exact resume
(in either phase)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.build import build_sam3

TINY_RUN = ["--config", "tiny", "--batch", "2", "--prompts", "2", "--detector-steps", "4",
            "--tracker-steps", "2", "--clip-frames", "3", "--eval-every", "1000",
            "--eval-images", "2", "--log-every", "1", "--threads", "1", "--device", "cpu"]  # fmt: skip


def train(*args: str | Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "model.embedded.train", *TINY_RUN, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_a_run_exports_a_checkpoint_that_loads_strictly(tmp_path: Path) -> None:
    out = train("--out", tmp_path / "run", "--export", tmp_path / "tiny.safetensors")
    assert "det 4/4" in out and "trk 2/2" in out and "exported" in out
    model = build_sam3("tiny", tmp_path / "tiny.safetensors")
    assert model.load_report is not None
    assert model.tokenizer.encode("red circle") == build_sam3(
        "tiny", tmp_path / "run" / "last.pt"
    ).tokenizer.encode("red circle")


def test_a_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path: Path) -> None:
    train("--out", tmp_path / "whole")
    out = train("--out", tmp_path / "parts", "--stop-after", "2")
    assert "det 2/4" in out and "det 3/4" not in out and "trk" not in out
    assert "stopped after detector step 2" in out
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["step"] == 2
    out = train("--out", tmp_path / "parts", "--resume", "--stop-tracker-after", "1")
    assert "resumed" in out and "det 2/4" not in out and "det 3/4" in out
    assert "trk 1/2" in out and "trk 2/2" not in out and "stopped after tracker step 1" in out
    out = train("--out", tmp_path / "parts", "--resume")
    assert "phase tracker, step 1" in out and "trk 1/2" not in out and "trk 2/2" in out
    whole, parts = weights(tmp_path / "whole"), weights(tmp_path / "parts")
    assert whole.keys() == parts.keys()
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


def test_worker_processes_train_the_same_weights_and_init_takes_an_export(tmp_path: Path) -> None:
    train("--out", tmp_path / "here", "--stop-after", "2")
    train("--out", tmp_path / "there", "--stop-after", "2", "--workers", "2")
    here, there = weights(tmp_path / "here"), weights(tmp_path / "there")
    assert all(torch.equal(here[k], there[k]) for k in here)

    train("--out", tmp_path / "run", "--tracker-steps", "0", "--export", tmp_path / "a.safetensors")
    out = train(
        "--out", tmp_path / "more", "--init", tmp_path / "a.safetensors", "--stop-after", "1"
    )
    assert f"initialised from {tmp_path / 'a.safetensors'}" in out and "det 1/4" in out


def test_freeze_trunk_trains_the_detector_around_a_fixed_trunk(tmp_path: Path) -> None:
    train("--out", tmp_path / "start", "--stop-after", "1")
    start = weights(tmp_path / "start")
    init = ("--init", tmp_path / "start" / "last.pt", "--tracker-steps", "0")
    train("--out", tmp_path / "frozen", *init, "--freeze-trunk", "--stop-after", "2")
    train("--out", tmp_path / "free", *init, "--stop-after", "2")
    frozen, free = weights(tmp_path / "frozen"), weights(tmp_path / "free")
    trunk = [k for k in start if ".vision_backbone.trunk." in k and start[k].is_floating_point()]
    others = [k for k in start if k.startswith("detector.transformer.decoder.")]
    assert trunk and others
    assert all(torch.equal(frozen[k], start[k]) for k in trunk)
    assert not all(torch.equal(free[k], start[k]) for k in trunk)
    assert not all(torch.equal(frozen[k], start[k]) for k in others)


class FakeClock:
    """time.monotonic for the trainer's sizing: each step takes `per_step` seconds."""

    def __init__(self, per_step: float) -> None:
        self.now, self.per_step = 1000.0, per_step

    def monotonic(self) -> float:
        return self.now


def test_minutes_sizes_the_run_from_its_own_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic: the sizing reads an injected clock, not this machine's speed (a busy
    # machine made the old subprocess run miss its 150 steps in 12 s).
    from model.embedded.train import __main__ as trainer

    clock = FakeClock(per_step=0.5)
    monkeypatch.setattr(trainer, "time", clock)
    sizing = trainer._Sizing(minutes=10, started=clock.now)
    sized = None
    for step in range(1, trainer._Sizing.STEPS + 1):
        clock.now += clock.per_step
        sized = sizing.after_step(step)
        assert (sized is None) == (step < trainer._Sizing.STEPS)
    budget = 600 * (1 - trainer._Sizing.RESERVE) - trainer._Sizing.STEPS * clock.per_step
    assert sized == trainer._Sizing.STEPS + int(budget / clock.per_step)

    late = trainer._Sizing(minutes=0.01, started=clock.now)  # the budget is spent by step 150
    for step in range(1, trainer._Sizing.STEPS + 1):
        clock.now += clock.per_step
        sized = late.after_step(step)
    assert sized == trainer._Sizing.STEPS  # never fewer steps than were taken


def test_first_sample_moves_the_data_and_a_resume_must_keep_it(tmp_path: Path) -> None:
    train("--out", tmp_path / "fresh", "--first-sample", "5000", "--stop-after", "2")
    assert torch.load(tmp_path / "fresh" / "last.pt", weights_only=True)["first_sample"] == 5000
    moved = weights(tmp_path / "fresh")
    train("--out", tmp_path / "base", "--stop-after", "2")
    base = weights(tmp_path / "base")
    assert any(not torch.equal(moved[k], base[k]) for k in moved)  # other images, other steps

    result = subprocess.run(
        [sys.executable, "-m", "model.embedded.train", *TINY_RUN, "--out", str(tmp_path / "fresh"),
         "--resume", "--first-sample", "0"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0 and "--first-sample 5000" in result.stderr


def test_training_may_not_reach_the_validation_samples(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model.embedded.train", *TINY_RUN, "--out", str(tmp_path / "run"),
         "--first-sample", "9999999"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0 and "validation reads from" in result.stderr
    assert not (tmp_path / "run" / "last.pt").exists()
