"""What a checkpoint read from disk is: its tensors under official key names, its format, and
the one error every reader and loader raises.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from model.config import Sam3Config

# The ViT's complex RoPE tables: in `sam3.pt`, but not storable in safetensors files (recomputed).
ROPE_TABLE = re.compile(r".*\.trunk\.blocks\.\d+\.attn\.freqs_cis")


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
