"""Reading SAM 3 checkpoints and loading them strictly into a meta-built model.

Three on-disk formats, one key space (the official `sam3.pt` names):

* official `sam3.pt`: `torch.load(weights_only=True, mmap=True)`, optionally under `{"model": ...}`;
* an HF `facebook/sam3` folder: `model.safetensors` (or shards + `model.safetensors.index.json`),
  renamed by the pure `checkpoint_hf.remap_hf`;
* the project's own file: one `.safetensors` whose metadata carries the `Sam3Config` (and the
  tokenizer files of small models) as JSON.

Loading is strict: missing keys, unexpected keys and shape mismatches raise one `CheckpointError`
that lists them grouped by module. Keys a format cannot hold (the complex ViT RoPE tables in HF and
safetensors files) are recomputed from the config, never guessed.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import pickle
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from model.checkpoint_hf import HF_ABSENT_PATTERNS, is_hf_layout, remap_hf
from model.config import Sam3Config

NATIVE_METADATA_KEY = "sam3_streamer"
NATIVE_VERSION = 1
_ROPE_TABLE = re.compile(r".*\.trunk\.blocks\.\d+\.attn\.freqs_cis")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose keys/shapes do not fit the model."""


class CheckpointFormat(enum.Enum):
    OFFICIAL = "official sam3.pt"
    HF = "Hugging Face safetensors"
    NATIVE = "sam3-streamer safetensors"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk: tensors under official key names, plus what came with them."""

    state_dict: dict[str, torch.Tensor]
    format: CheckpointFormat
    path: Path
    config: Sam3Config | None = None  # only the native format records its config
    tokenizer_files: dict[str, str] | None = None  # native: {"vocab.json": ..., "merges.txt": ...}
    absent: tuple[re.Pattern[str], ...] = ()  # official keys this format never stores


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


# --- reading ------------------------------------------------------------------------------------


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
            f"{path}: refusing to unpickle Python objects other than tensors (weights_only=True): {err}"
        ) from err
    except Exception as err:  # torch.load fails in many ways on junk: all mean "not a checkpoint"
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {err}"
        ) from err
    tokenizer_files = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        stored = obj.get("tokenizer")  # `python -m model.train` states keep their vocab here
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
        return Checkpoint(state, CheckpointFormat.OFFICIAL, path, absent=(_ROPE_TABLE,))
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
        absent=(_ROPE_TABLE,),
    )


# --- the project's own format --------------------------------------------------------------------


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
        k: v.detach().contiguous() for k, v in state_dict.items() if not _ROPE_TABLE.fullmatch(k)
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
    return cls(**kwargs)


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# --- strict loading ------------------------------------------------------------------------------


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
        if _ROPE_TABLE.fullmatch(key):
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
