"""Reading SAM 3 checkpoints from disk into official `sam3.pt` key names.

Three on-disk formats, one key space:

* official `sam3.pt`: `torch.load(weights_only=True, mmap=True)`, optionally under `{"model": ...}`;
* an HF `facebook/sam3` folder: `model.safetensors` (or shards + `model.safetensors.index.json`),
  renamed by the pure `model.checkpoint.hf.remap_hf`;
* the project's own file (model/checkpoint/native.py).

Keys a format cannot hold (the complex ViT RoPE tables in HF and safetensors files) are named in
`Checkpoint.absent`; the strict loader (model/checkpoint/strict.py) recomputes them.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from model.checkpoint.format import ROPE_TABLE, Checkpoint, CheckpointError, CheckpointFormat
from model.checkpoint.hf import HF_ABSENT_PATTERNS, is_hf_layout, remap_hf
from model.checkpoint.native import NATIVE_METADATA_KEY, NATIVE_VERSION, config_from_dict


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported checkpoint into official key names (tensors stay on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        if (path / "model.safetensors").exists() or (
            path / "model.safetensors.index.json"
        ).exists():
            return _read_hf_folder(path)
        if (path / "sam3.pt").exists():
            return read_checkpoint(path / "sam3.pt")
        raise CheckpointError(f"{path} holds neither model.safetensors(.index.json) nor sam3.pt")
    if path.suffix == ".safetensors":
        return _read_safetensors_file(path)
    return _read_torch_file(path)


def _first_line(err: BaseException) -> str:
    """The first line of a library's error: torch appends paragraphs of advice to its own."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _read_torch_file(path: Path) -> Checkpoint:
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} is not a checkpoint of tensors: refusing to unpickle what it holds "
            "(Python objects, or bytes that are no checkpoint at all; weights_only=True)"
        ) from err
    except Exception as err:  # torch.load fails in many ways on junk: all mean "not a checkpoint"
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {_first_line(err)}"
        ) from err
    tokenizer_files = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        stored = obj.get(
            "tokenizer"
        )  # `python -m model.embedded.train` states keep their vocab here
        if isinstance(stored, dict) and all(isinstance(v, str) for v in stored.values()):
            tokenizer_files = {str(k): v for k, v in stored.items()}
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")
    not_tensors = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(
            f"{path}: {len(not_tensors)} entries are not tensors: {not_tensors[:8]}"
        )
    if is_hf_layout(obj):
        return Checkpoint(remap_hf(obj), CheckpointFormat.HF, path, absent=HF_ABSENT_PATTERNS)
    return Checkpoint(dict(obj), CheckpointFormat.OFFICIAL, path, tokenizer_files=tokenizer_files)


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {err}"
        ) from err


def _read_hf_folder(folder: Path) -> Checkpoint:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / s for s in shards]
    else:
        files = [folder / "model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(_load_safetensors(file)[0])
    return Checkpoint(remap_hf(state), CheckpointFormat.HF, folder, absent=HF_ABSENT_PATTERNS)


def _read_safetensors_file(path: Path) -> Checkpoint:
    state, metadata = _load_safetensors(path)
    if NATIVE_METADATA_KEY not in metadata:
        if is_hf_layout(state):
            return Checkpoint(remap_hf(state), CheckpointFormat.HF, path, absent=HF_ABSENT_PATTERNS)
        return Checkpoint(state, CheckpointFormat.OFFICIAL, path, absent=(ROPE_TABLE,))
    header = json.loads(metadata[NATIVE_METADATA_KEY])
    if header.get("version") != NATIVE_VERSION:
        raise CheckpointError(
            f"{path}: native format version {header.get('version')}, expected {NATIVE_VERSION}"
        )
    return Checkpoint(
        state,
        CheckpointFormat.NATIVE,
        path,
        config=config_from_dict(header["config"]),
        tokenizer_files=header.get("tokenizer"),
        absent=(ROPE_TABLE,),
    )
