"""`build_sam3`: config (by name or value) + optional checkpoint -> a ready `Sam3` in eval mode.

Without a checkpoint the model is built directly on `device` with random weights. With one, it
is built on the meta device (no memory, no init work), every tensor is assigned from the file
by the strict loader, derived buffers are recomputed, and only then is it moved to `device` and
cast to `dtype` (floating tensors only; the complex RoPE tables stay complex64).
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path

import torch

from model.backbone.tokenizer import Tokenizer, train_bpe
from model.checkpoint.format import Checkpoint, CheckpointError, CheckpointFormat
from model.checkpoint.native import native_header
from model.checkpoint.read import read_checkpoint
from model.checkpoint.strict import load_state
from model.config import CONFIGS, Sam3Config
from model.sam3 import Sam3

CLIP_VOCAB_SIZE = 49408

# Config names whose trained weights ship inside the package, under model/assets/.
PACKAGED_WEIGHTS = {"embedded": "embedded.safetensors"}


def packaged_checkpoint(name: str) -> Path | None:
    """The weights shipped with the package for config `name`, or None if there are none."""
    filename = PACKAGED_WEIGHTS.get(name)
    if filename is None:
        return None
    path = Path(str(resources.files("model") / "assets" / filename))
    return path if path.is_file() else None


def build_sam3(
    name_or_config: str | Sam3Config | None = None,
    checkpoint: str | Path | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    tokenizer: Tokenizer | None = None,
) -> Sam3:
    """Build a SAM 3 model.

    name_or_config: a `CONFIGS` name ("sam3", "tiny", ...), a `Sam3Config`, or None for the
    config stored in a native checkpoint (else "sam3"). checkpoint: official `sam3.pt`, an HF
    `facebook/sam3` folder, or a native `.safetensors` file. The returned model has `.tokenizer`
    set (explicit > stored with the checkpoint > official CLIP vocab > the vocab stored with
    packaged weights of the same text encoder > byte-level fallback) and
    `.load_report` (None without a checkpoint). A config name with packaged weights
    (`PACKAGED_WEIGHTS`, e.g. "embedded") loads them when no checkpoint is given.
    """
    if checkpoint is None and isinstance(name_or_config, str):
        checkpoint = packaged_checkpoint(name_or_config)
    ckpt = read_checkpoint(checkpoint) if checkpoint is not None else None
    config = _resolve_config(name_or_config, ckpt)
    if ckpt is None:
        model = Sam3(config, device=device, dtype=dtype)
        model.load_report = None
    else:
        model = Sam3(config, device=torch.device("meta"))
        model.load_report = load_state(model, ckpt)
        _move(model, device, dtype)
    model.tokenizer = tokenizer or _resolve_tokenizer(config, ckpt)
    if model.tokenizer.vocab_size > config.text.vocab_size:
        raise ValueError(
            f"tokenizer has {model.tokenizer.vocab_size} ids, the text encoder {config.text.vocab_size}"
        )
    return model.eval()


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def inference_dtype(device: torch.device | str, requested: str = "auto") -> torch.dtype:
    """The dtype to run on `device`: `requested` ("float32", "bfloat16"), or for "auto" bfloat16
    where the hardware computes it natively (CUDA with bf16 support, as the official tracker runs;
    a CPU with AMX tiles or AVX512-BF16, where oneDNN's bf16 kernels beat float32) and float32
    elsewhere (a CPU without them emulates bf16, slower than float32)."""
    if requested != "auto":
        if requested not in DTYPES:
            raise ValueError(f"unknown dtype {requested!r}; known: auto, {', '.join(DTYPES)}")
        return DTYPES[requested]
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        native = device.type == "cpu" and any(
            getattr(torch.cpu, probe, lambda: False)()  # private; absent in old torch
            for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        )
    return torch.bfloat16 if native else torch.float32


def _move(model: Sam3, device: torch.device | str | None, dtype: torch.dtype | None) -> None:
    """Like `model.to(device, dtype)`, but the dtype applies to floating tensors only.

    `nn.Module.to(dtype)` would also cast the complex64 RoPE tables to a real dtype, dropping
    their imaginary part; `_apply` is the hook `.to` itself uses.
    """
    model.to(device=device)
    if dtype is not None:
        model._apply(  # type: ignore[no-untyped-call]  # untyped in torch
            lambda t: t.to(dtype) if t.is_floating_point() else t
        )


def _resolve_config(name_or_config: str | Sam3Config | None, ckpt: Checkpoint | None) -> Sam3Config:
    stored = ckpt.config if ckpt is not None else None
    if name_or_config is None:
        return stored or CONFIGS["sam3"]
    if isinstance(name_or_config, Sam3Config):
        config = name_or_config
    elif name_or_config in CONFIGS:
        config = CONFIGS[name_or_config]
    else:
        raise ValueError(f"unknown config {name_or_config!r}; known: {sorted(CONFIGS)}")
    # Only the architecture must agree with the weights; the video loop's thresholds are run-time
    # settings, so the requested ones win over whatever the file was saved with.
    if stored is not None and replace(stored, name="", video=config.video) != replace(
        config, name=""
    ):
        assert ckpt is not None  # `stored` came from it
        raise CheckpointError(
            f"{ckpt.path} was saved for config {stored.name!r}, whose architecture differs from "
            f"the requested {config.name!r}; pass name_or_config=None to use the stored one"
        )
    return config


def _resolve_tokenizer(config: Sam3Config, ckpt: Checkpoint | None) -> Tokenizer:
    context = config.text.context_length
    if ckpt is not None and ckpt.tokenizer_files is not None:
        return Tokenizer.from_files(ckpt.tokenizer_files, context_length=context)
    if ckpt is not None and ckpt.format is CheckpointFormat.HF:
        folder = ckpt.path if ckpt.path.is_dir() else ckpt.path.parent
        try:
            return Tokenizer.from_folder(folder, context_length=context)
        except FileNotFoundError:
            pass  # an HF folder without tokenizer files: fall through to the shipped vocab
    if config.text.vocab_size == CLIP_VOCAB_SIZE:
        return Tokenizer.from_clip_bpe(context_length=context)
    shipped = _packaged_tokenizer_files(config)
    if shipped is not None:
        # a state of the embedded model's training (`last.pt`) or a bare config: the vocab the
        # shipped weights were trained with, read from their file's header
        return Tokenizer.from_files(shipped, context_length=context)
    return train_bpe((), min(config.text.vocab_size, 514), context_length=context)


def _packaged_tokenizer_files(config: Sam3Config) -> dict[str, str] | None:
    """The tokenizer stored with packaged weights whose text encoder is `config`'s, if any."""
    for name in PACKAGED_WEIGHTS:
        path = packaged_checkpoint(name)
        if path is None or CONFIGS[name].text != config.text:
            continue
        header = native_header(path)
        files = header.get("tokenizer") if header is not None else None
        if isinstance(files, dict):
            return {str(k): str(v) for k, v in files.items()}
    return None
