"""docs/events.md documents every event, every field and its wire key: the table cannot drift."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from protocols import events, rle

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
STRUCTS = [
    *events.KNOWN_EVENTS,
    events.ObjectMask,
    rle.Rle,
    events.ConceptInfo,
    events.Exemplar,
    events.Thresholds,
    events.DropCounts,
]


def _sections() -> dict[str, dict[str, str]]:
    """Section title's first word -> {field: wire key} from its table."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if line.startswith("### "):
            current = line[4:].split()[0]
            sections[current] = {}
        elif current and (row := re.match(r"\| (\w+) \| `([^`]+)` \|", line)):
            sections[current][row[1]] = row[2]
    return sections


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda c: c.__name__)
def test_every_field_is_documented_with_its_key(cls: type) -> None:
    documented = _sections().get(cls.__name__)
    assert documented is not None, f"docs/events.md has no '### {cls.__name__}' section"
    expected = {f.name: f.metadata.get("wire", f.name) for f in dataclasses.fields(cls)}
    assert documented == expected
    if hasattr(cls, "TAG"):
        assert f"### {cls.__name__} (`{cls.TAG}`)" in DOC.read_text()


def test_enum_values_are_documented() -> None:
    text = DOC.read_text()
    for enum_cls in (events.ObjectState, events.EndReason, events.StreamState, events.ErrorCode):
        row = next(
            line for line in text.splitlines() if line.startswith(f"| {enum_cls.__name__} |")
        )
        for member in enum_cls:
            assert f"{int(member)} {member.name.lower()}" in row
