"""Strict loading of a read checkpoint into a model built on the meta device.

Missing keys, unexpected keys and shape mismatches raise one `CheckpointError` that lists them
grouped by module; derived buffers are recomputed from the config, never guessed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from model.checkpoint.format import ROPE_TABLE, Checkpoint, CheckpointError


@dataclass(frozen=True)
class LoadReport:
    """What `load_state` did beyond copying tensors one to one."""

    loaded: int
    recomputed: tuple[str, ...] = ()  # derived buffers rebuilt from the config (RoPE tables)
    zero_filled: tuple[
        str, ...
    ] = ()  # keys the format lacks, filled with zeros (HF: point exemplars)
    passed_through: tuple[str, ...] = ()  # keys for a part this model does not build (not loaded)


@dataclass(frozen=True)
class KeyDiff:
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()  # key, model, file

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 12) -> str:
        lines = []
        for title, keys in (
            ("missing from the checkpoint", self.missing),
            ("unexpected in the checkpoint", self.unexpected),
        ):
            if keys:
                lines.append(f"{len(keys)} keys {title}:")
                lines += [f"  {group} ({n})" for group, n in _group(keys)[:limit]]
                if len(_group(keys)) > limit:
                    lines.append(f"  ... and {len(_group(keys)) - limit} more groups")
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} shape mismatches (model vs checkpoint):")
            lines += [f"  {k}: {m} vs {f}" for k, m, f in self.mismatched[:limit]]
        return "\n".join(lines)


def _group(keys: Iterable[str]) -> list[tuple[str, int]]:
    """Group keys by module path with layer indices folded: `...blocks.*.attn` (count)."""
    counts = Counter(
        re.sub(r"\.\d+(?=\.|$)", ".*", k.rsplit(".", 1)[0] if "." in k else k) for k in keys
    )
    return sorted(counts.items())


def load_state(
    model: nn.Module,
    checkpoint: Checkpoint,
    *,
    passthrough_prefixes: tuple[str, ...] = (),
) -> LoadReport:
    """Load `checkpoint` into `model` (typically built on the meta device) strictly, by assignment.

    Keys under `passthrough_prefixes` belong to parts this model does not build; they are counted
    in the report, not loaded. Raises `CheckpointError` listing every missing, unexpected or
    mis-shaped key at once.
    """
    expected = model.state_dict()
    state = dict(checkpoint.state_dict)
    passed = tuple(
        sorted(k for k in state if k.startswith(passthrough_prefixes) and k not in expected)
    )
    for key in passed:
        del state[key]
    recomputed, zero_filled = [], []
    for key, ref in expected.items():
        if key in state or not any(p.fullmatch(key) for p in checkpoint.absent):
            continue
        if ROPE_TABLE.fullmatch(key):
            state[key] = torch.empty(
                ref.shape, dtype=ref.dtype
            )  # filled by recompute_buffers below
            recomputed.append(key)
        else:
            state[key] = torch.zeros(ref.shape, dtype=ref.dtype)
            zero_filled.append(key)
    diff = KeyDiff(
        missing=tuple(sorted(set(expected) - set(state))),
        unexpected=tuple(sorted(set(state) - set(expected))),
        mismatched=tuple(
            (k, tuple(expected[k].shape), tuple(state[k].shape))
            for k in sorted(set(state) & set(expected))
            if expected[k].shape != state[k].shape
            or expected[k].is_complex() != state[k].is_complex()
        ),
    )
    if diff:
        raise CheckpointError(
            f"{checkpoint.path} ({checkpoint.format.value}) does not fit the model:\n{diff.describe()}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    recompute_buffers(model)
    return LoadReport(
        len(state) - len(recomputed) - len(zero_filled),
        tuple(recomputed),
        tuple(zero_filled),
        passed,
    )


def recompute_buffers(model: nn.Module) -> None:
    """Call every sub-module's `recompute_buffers()` hook, then insist nothing is left on `meta`.

    Modules with non-persistent or derived buffers implement `recompute_buffers(self) -> None`
    (the ViT refills its RoPE tables from the config).
    """
    for module in model.modules():
        hook = getattr(module, "recompute_buffers", None)
        if callable(hook):
            hook()
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(
            f"{len(left)} tensors are still on the meta device after loading: {left[:8]}"
        )
