"""What the API and the live page say about the loaded model: its name, the concepts it knows.

SAM 3's weights have an open vocabulary (any words); the embedded model knows only its training
world's phrases ("ring", "purple square", ...), so the page must start with one of those and show
the rest. A native checkpoint may carry them in its header (`known_concepts`); the packaged
embedded weights do not yet, and for them the phrases come from the world itself
(streamer/sources/world.py, the one runtime module allowed to load it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_SOURCE = "world://384@15"  # the concept world (streamer/sources/world.py)
DEMO_PROMPTS = ("ring", "purple square")  # in the default world scene; red squares pass by


@dataclass(frozen=True)
class ModelInfo:
    name: str | None = None  # "embedded", "sam3", ...; None: not told (a test's scripted model)
    known_concepts: tuple[str, ...] | None = None  # None: an open vocabulary
    default_source: str | None = None  # where this model has something to find
    default_prompt: str | None = None

    def as_json(self) -> dict[str, object]:
        known = list(self.known_concepts) if self.known_concepts is not None else None
        return {"name": self.name, "known_concepts": known,
                "default_source": self.default_source, "default_prompt": self.default_prompt}  # fmt: skip


def model_info(name: str, checkpoint: Path | None) -> ModelInfo:
    """What to tell clients about model `name` loaded from `checkpoint` (None: the packaged one).
    Reads the checkpoint's header only, never its tensors; a file that cannot be read tells
    nothing here (loading it reports the error)."""
    from model import CheckpointError, packaged_checkpoint
    from model.checkpoint.native import native_header

    packaged = packaged_checkpoint(name) if checkpoint is None else None
    path = checkpoint or packaged
    header = None
    if path is not None and path.suffix == ".safetensors":
        try:
            header = native_header(path)
        except CheckpointError:
            header = None
    listed = header.get("known_concepts") if header else None
    if isinstance(listed, list) and all(isinstance(c, str) for c in listed):
        known: tuple[str, ...] = tuple(listed)
    elif name == "embedded" and packaged is not None:
        from streamer.sources.world import world_concepts

        known = world_concepts()
    else:
        return ModelInfo(name=name)
    prompt = next((p for p in DEMO_PROMPTS if p in known), known[0] if known else None)
    source = DEMO_SOURCE if name == "embedded" else None  # the world it was trained on
    return ModelInfo(name=name, known_concepts=known, default_source=source, default_prompt=prompt)
