"""The tracker's per-object prompt bookkeeping: objects grouped by their number of point tokens
(one decoder call per group; one call on a frame without prompts), and small host-side checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model.config import TrackerConfig
from model.tracker.mask_decoder import DecoderOutput, MaskDecoder, resize_logits, working_dtype
from model.tracker.memory_bank import MemoryBatch
from model.tracker.prompt_encoder import NOT_A_POINT, PromptEncoder
from model.tracker.types import ObjectPrompt, TrackerFeatures


def decode_grouped(
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    feats: TrackerFeatures,
    conditioned: torch.Tensor,
    dense: torch.Tensor,
    prompts: list[ObjectPrompt | None],
) -> DecoderOutput:
    """Run the mask decoder on every object, grouping objects by their number of points.

    Objects without clicks or box get one "not a point" (official: an empty point with
    label -1), so with the padding token they decode with two not-a-point tokens.
    """
    device = conditioned.device
    image_pe = prompt_encoder.dense_pe().to(conditioned.dtype)
    groups: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(0 if prompt is None else prompt.num_points, []).append(i)
    parts: list[tuple[list[int], DecoderOutput]] = []
    for num_points, members in groups.items():
        coords = torch.zeros(len(members), max(num_points, 1), 2, device=device)
        labels = torch.full_like(coords[..., 0], NOT_A_POINT, dtype=torch.long)
        for j, i in enumerate(members):
            prompt = prompts[i]
            if prompt is not None and num_points:
                xy, lab = prompt.points_and_labels()
                coords[j], labels[j] = xy.to(device), lab.to(device)
        sparse = prompt_encoder.embed_points(coords, labels)  # n x (P+1) x C
        if len(members) == conditioned.shape[0]:  # everyone: no gather, no upload
            image, dense_in, s0, s1 = conditioned, dense, feats.feat_s0, feats.feat_s1
        else:
            rows = torch.tensor(members, device=device)
            image, dense_in = conditioned[rows], dense[rows]
            s0, s1 = feats.feat_s0[rows], feats.feat_s1[rows]
        out = mask_decoder(
            image=image,
            image_pe=image_pe,
            sparse=sparse.to(conditioned.dtype),
            dense=dense_in,
            feat_s0=s0,
            feat_s1=s1,
        )
        parts.append((members, out))
    if len(parts) == 1:
        return parts[0][1]
    order = [0] * len(prompts)
    for k, i in enumerate(i for members, _ in parts for i in members):
        order[i] = k
    index = torch.tensor(order, device=device)
    return DecoderOutput(
        *(torch.cat([getattr(o, f) for _, o in parts])[index] for f in DecoderOutput._fields)
    )


def flags(values: list[bool], device: torch.device) -> torch.Tensor:
    """(N,) bool on the device; a factory fill (no upload) when all agree, the common case."""
    if all(v == values[0] for v in values):
        return torch.full((len(values),), values[0], device=device)
    return torch.tensor(values, device=device)


def num_objects(memory: MemoryBatch | None, prompts: Sequence[ObjectPrompt | None] | None) -> int:
    if memory is None and prompts is None:
        raise ValueError("track_step needs memories, prompts, or both")
    n_mem = None if memory is None else memory.features.shape[0]
    n_prompts = None if prompts is None else len(prompts)
    if n_mem is not None and n_prompts is not None and n_mem != n_prompts:
        raise ValueError(f"{n_mem} objects in memory but {n_prompts} prompts")
    n = n_mem if n_mem is not None else n_prompts
    assert n is not None
    if n == 0:
        raise ValueError("track_step needs at least one object")
    return n


def mask_prompts(
    prompts: list[ObjectPrompt | None], size: int, like: torch.Tensor
) -> dict[int, torch.Tensor]:
    """Mask prompts resized to the memory-encoder size 16g: object index -> (1, 1, 16g, 16g),
    on like's device in its working dtype."""
    out: dict[int, torch.Tensor] = {}
    for i, prompt in enumerate(prompts):
        if prompt is not None and prompt.mask is not None:
            mask = prompt.mask[None, None].to(like.device, working_dtype(like.dtype))
            out[i] = resize_logits(mask, size, antialias=True)
    return out


def use_multimask(config: TrackerConfig, prompt: ObjectPrompt | None) -> bool:
    """Official `_use_multimask`: 3 candidate masks for 0..1 clicks (prompted or tracking)."""
    c = config
    if prompt is not None and prompt.mask is not None:
        return False  # the pointer of a mask prompt comes from the single-mask output
    num_points = 0 if prompt is None else prompt.num_points
    return (
        c.multimask_output_in_sam
        and (prompt is not None or c.multimask_output_for_tracking)
        and c.multimask_min_pt_num <= num_points <= c.multimask_max_pt_num
    )
