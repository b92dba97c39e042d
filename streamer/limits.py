"""The bounds that keep one API client from overloading the engine, in one place.

A concept's score thresholds, the objects a concept and a stream may hold, and where outputs named
by a client may be written. Each check returns nothing or raises `LimitError` with one sentence
naming the field, the value and what is allowed; the HTTP API answers it with a 400 and the CLI
with exit 2. The JSON-Schema fragments below are what the OpenAPI document should say of the same
fields (streamer/openapi.py may import them), so the document and the checks cannot disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.types import Concept


class LimitError(ValueError):
    """A request over a limit; the message names the field and the allowed range."""


@dataclass(frozen=True)
class Limits:
    min_threshold: float = 0.05  # lower: every faint detection starts an object
    max_threshold: float = 1.0
    objects_per_concept: int = 64  # a concept's cap when its request names none
    max_objects_per_concept: int = 256  # the most a request may ask for (`max_objects`)
    objects_per_stream: int = 256  # live objects of one stream, every concept together

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_threshold <= self.max_threshold <= 1.0:
            raise ValueError("need 0 <= min_threshold <= max_threshold <= 1")
        if not 1 <= self.objects_per_concept <= self.max_objects_per_concept:
            raise ValueError("need 1 <= objects_per_concept <= max_objects_per_concept")
        if self.objects_per_stream < 1:
            raise ValueError(f"objects_per_stream must be >= 1, got {self.objects_per_stream}")


LIMITS: dict[str, Limits] = {
    "default": Limits(),
    "tiny": Limits(objects_per_concept=2, max_objects_per_concept=4, objects_per_stream=4),
}
DEFAULT = LIMITS["default"]


def check_threshold(value: float | None, field: str, limits: Limits = DEFAULT) -> None:
    """None (the model's default) or a number in [min_threshold, max_threshold]."""
    if value is None:
        return
    low, high = limits.min_threshold, limits.max_threshold
    if not low <= value <= high:
        raise LimitError(f"{field}: {value:g} is outside the allowed range [{low:g}, {high:g}]")


def check_max_objects(value: int | None, field: str, limits: Limits = DEFAULT) -> None:
    if value is None:
        return
    high = limits.max_objects_per_concept
    if isinstance(value, bool) or not 1 <= value <= high:
        raise LimitError(f"{field}: {value!r} is outside the allowed range [1, {high}]")


def check_concept(concept: Concept, field: str, limits: Limits = DEFAULT) -> None:
    """Raise LimitError if `concept` asks for thresholds or a cap outside `limits`."""
    check_threshold(concept.thresholds.detection, f"{field}.thresholds.detection", limits)
    check_threshold(concept.thresholds.new_object, f"{field}.thresholds.new_object", limits)
    check_max_objects(concept.max_objects, f"{field}.max_objects", limits)


def output_path(target: str, allowed_dir: str | os.PathLike[str], field: str) -> Path:
    """The absolute path `target` names, if it lies inside `allowed_dir` (a relative target is
    taken inside it); symbolic links and `..` are resolved first, so neither escapes it."""
    if "\x00" in target:
        raise LimitError(f"{field}: {target!r} contains a NUL character; name a file")
    root = Path(allowed_dir).resolve()
    resolved = (root / target).resolve()  # an absolute target replaces root here
    if not resolved.is_relative_to(root):
        raise LimitError(
            f"{field}: {target!r} is outside the output directory {str(root)!r}; "
            "name a file inside it"
        )
    return resolved


# What the OpenAPI document says of the same fields.
THRESHOLD_SCHEMA: dict[str, Any] = {
    "type": "number", "minimum": DEFAULT.min_threshold, "maximum": DEFAULT.max_threshold,
    "nullable": True,
}  # fmt: skip
MAX_OBJECTS_SCHEMA: dict[str, Any] = {
    "type": "integer", "minimum": 1, "maximum": DEFAULT.max_objects_per_concept,
    "description": "live objects of this concept at most "
                   f"(default {DEFAULT.objects_per_concept}); detections over it are reported",
}  # fmt: skip
