"""Average the weights of runs of one model: `python -m model.embedded.train.average`.

    python -m model.embedded.train.average --out runs/soup/embedded.safetensors A.safetensors B.safetensors

A uniform "model soup" (Wortsman et al., 2022): checkpoints fine-tuned from one ancestor sit in
one basin, and their mean is often better than each of them. The inputs must be native
checkpoints (`--export` of `python -m model.embedded.train`) with the same networks, tokenizer and keys;
floating tensors are averaged in float64 and stored in their own dtype, the others must agree.
The loop settings (`config.video`, not weights) are the last checkpoint's.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from model.checkpoint.format import Checkpoint, CheckpointError, CheckpointFormat
from model.checkpoint.native import save_native_state
from model.checkpoint.read import read_checkpoint
from model.config import Sam3Config, VideoConfig


def average_checkpoints(checkpoints: Sequence[Checkpoint]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' floating tensors (other tensors must be equal)."""
    if len(checkpoints) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    for checkpoint in checkpoints:
        if checkpoint.format is not CheckpointFormat.NATIVE:
            raise CheckpointError(f"{checkpoint.path}: only native checkpoints can be averaged")
    first = checkpoints[0]
    for other in checkpoints[1:]:
        if _networks(other) != _networks(first) or other.tokenizer_files != first.tokenizer_files:
            raise CheckpointError(f"{other.path}: networks or tokenizer differ from {first.path}")
        if other.state_dict.keys() != first.state_dict.keys():
            diff = sorted(other.state_dict.keys() ^ first.state_dict.keys())
            raise CheckpointError(f"{other.path}: keys differ from {first.path}: {diff[:8]}")
    averaged = {}
    for key, tensor in first.state_dict.items():
        stack = [c.state_dict[key] for c in checkpoints]
        if any(t.shape != tensor.shape for t in stack):
            raise CheckpointError(f"{key}: shapes differ: {[tuple(t.shape) for t in stack]}")
        if tensor.is_floating_point():
            mean = torch.stack([t.double() for t in stack]).mean(dim=0)
            averaged[key] = mean.to(tensor.dtype)
        elif all(torch.equal(tensor, t) for t in stack[1:]):
            averaged[key] = tensor
        else:
            raise CheckpointError(f"{key}: non-floating tensor differs between checkpoints")
    return averaged


def _networks(checkpoint: Checkpoint) -> Sam3Config:
    """The (native) checkpoint's config without its loop settings."""
    assert checkpoint.config is not None
    return dataclasses.replace(checkpoint.config, video=VideoConfig())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="native .safetensors files")
    parser.add_argument("--out", type=Path, required=True, help="the averaged .safetensors file")
    args = parser.parse_args(argv)
    checkpoints = [read_checkpoint(path) for path in args.checkpoints]
    state = average_checkpoints(checkpoints)
    last = checkpoints[-1]
    assert last.config is not None  # native checkpoints record their config
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_native_state(args.out, state, last.config, tokenizer_files=last.tokenizer_files)
    size = args.out.stat().st_size / 1e6
    print(f"averaged {len(checkpoints)} checkpoints -> {args.out} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
