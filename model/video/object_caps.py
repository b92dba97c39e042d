"""Caps on how many objects a stream and each of its concepts may hold, applied where objects spawn.

Without a cap a permissive concept (low thresholds on a busy scene) starts an object for every
detection, and each object costs a memory bank and a share of every frame's tracker call. Here the
detections that would start new objects are cut to the room left, best score first, and the ones
cut are counted by concept so the caller can report them: a capped detection is never dropped
without a word.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch

from model.types import Concept


def cap_per_concept(
    new_dets: Sequence[int],
    det_scores: torch.Tensor,
    det_groups: torch.Tensor,
    concepts: Mapping[int, Concept],
    live_concepts: Iterable[int | None],
) -> tuple[int, ...]:
    """The new detections (indices) that fit under their concept's `max_objects`, in their order.

    `det_groups` (N,) holds each detection's concept id, `live_concepts` the concept id of every
    live object. Within a concept the best scores are kept (ties: lower index first).
    """
    live = Counter(live_concepts)
    by_concept: dict[int, list[int]] = {}
    for d in new_dets:
        by_concept.setdefault(int(det_groups[d]), []).append(d)
    kept: set[int] = set()
    for concept_id, dets in by_concept.items():
        cap = concepts[concept_id].max_objects if concept_id in concepts else None
        room = len(dets) if cap is None else max(0, cap - live[concept_id])
        ranked = sorted(dets, key=lambda d: (-float(det_scores[d]), d))
        kept.update(ranked[:room])
    return tuple(d for d in new_dets if d in kept)


def count_capped(
    wanted: Sequence[int], kept: Sequence[int], det_groups: torch.Tensor
) -> dict[int, int]:
    """concept id -> detections in `wanted` that did not make it into `kept`."""
    left = set(kept)
    return dict(Counter(int(det_groups[d]) for d in wanted if d not in left))
