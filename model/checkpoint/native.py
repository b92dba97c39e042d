"""The project's own checkpoint format: one `.safetensors` file whose metadata carries the
`Sam3Config` (and the tokenizer files of small models) as JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from model.checkpoint.format import ROPE_TABLE, CheckpointError
from model.config import Sam3Config

NATIVE_METADATA_KEY = "sam3_streamer"
NATIVE_VERSION = 1


def save_native(
    path: str | Path,
    model: nn.Module,
    config: Sam3Config,
    *,
    tokenizer_files: Mapping[str, str] | None = None,
) -> None:
    """Write `model`'s weights and `config` (and small tokenizer files) as one `.safetensors` file.

    The complex RoPE tables are left out (safetensors has no complex dtype); loading recomputes them.
    """
    save_native_state(path, model.state_dict(), config, tokenizer_files=tokenizer_files)


def save_native_state(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: Sam3Config,
    *,
    tokenizer_files: Mapping[str, str] | None = None,
) -> None:
    """`save_native` for a bare state dict (e.g. averaged weights)."""
    state = {
        k: v.detach().contiguous() for k, v in state_dict.items() if not ROPE_TABLE.fullmatch(k)
    }
    header = {"version": NATIVE_VERSION, "config": dataclasses.asdict(config)}
    if tokenizer_files is not None:
        header["tokenizer"] = dict(tokenizer_files)
    save_file(state, str(path), metadata={NATIVE_METADATA_KEY: json.dumps(header)})


def config_from_dict(data: Mapping[str, object], cls: type = Sam3Config) -> Sam3Config:
    """Rebuild a (nested) frozen config dataclass from `dataclasses.asdict` output; lists -> tuples."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # a field added after the file was written keeps its default
        value = data[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
            value = config_from_dict(value, type(default))
        kwargs[f.name] = _tuples(value)
    return cast(Sam3Config, cls(**kwargs))  # nested calls return their field's config class


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def native_header(path: str | Path) -> dict[str, object] | None:
    """The JSON header of a native file, read without its tensors; None for other safetensors."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {err}"
        ) from err
    if NATIVE_METADATA_KEY not in metadata:
        return None
    header: dict[str, object] = json.loads(metadata[NATIVE_METADATA_KEY])
    if header.get("version") != NATIVE_VERSION:
        raise CheckpointError(
            f"{path}: native format version {header.get('version')}, expected {NATIVE_VERSION}"
        )
    return header
