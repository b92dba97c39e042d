"""Blank prompts are refused in one sentence, before the model loads (no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["run", "clip.mp4", "--prompt", ""], "--prompt ''"),
        (["run", "clip.mp4", "--prompt", "   "], "--prompt '   '"),
        (["run", "clip.mp4", "--prompt", "person", "--redact", "\t"], "--redact '\\t'"),
        (["demo", "--prompt", "ring", "--prompt", ""], "--prompt ''"),
    ],
)
def test_a_blank_prompt_is_one_sentence_before_the_model_loads(
    argv: list[str], culprit: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamer", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert culprit in lines[-1] and "at least one word" in lines[-1]
    assert not any(line.startswith(("streamer: model", "streamer demo: model")) for line in lines)
