"""SAM 3 networks and the per-stream tracking state machine (synchronous, device-agnostic, no I/O).

Public surface: `build_sam3`, `inference_dtype`, `Sam3`, `Sam3Config`, `CONFIGS`, `Tokenizer`, `CheckpointError`,
`VideoTracker`. Names resolve lazily so `import model.types` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_sam3": "model.build",
    "packaged_checkpoint": "model.build",
    "inference_dtype": "model.build",
    "Sam3": "model.sam3",
    "Sam3Config": "model.config",
    "CONFIGS": "model.config",
    "Tokenizer": "model.backbone.tokenizer",
    "CheckpointError": "model.checkpoint.format",
    "VideoTracker": "model.video.video_tracker",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
