"""The network calls of one steady frame at any size, counted on the meta device (no compute).

A full-size frame takes minutes on this CPU, and the loop itself cannot run without data (its
rules read mask values). The networks can: built on the meta device, `Sam3FrameModel` runs the
calls one steady frame makes, with the steady state's shapes, through `OpCounter(meta_values=
True)` (value-dependent ops answered as in the steady state):

    encode_images (backbone, 1 frame) -> detect (1 concept) -> track (N objects, S spatial
    memories, P pointers) -> encode_memory (N objects)

The loop's own work between those calls (association, publication) is counted on a real run
(bench/video_counts.py); `check_against` compares the two methods where both apply.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from bench.counting import FrameCounts, OpCounter
from model.build import build_sam3
from model.config import CONFIGS, Sam3Config
from model.tracker.memory_bank import MemoryBatch
from model.types import Concept
from model.video.sam3_frame_model import Sam3FrameModel

NETWORK_STAGES = ("backbone", "detect", "track", "memory")


def meta_model(config: str | Sam3Config, dtype: torch.dtype) -> Sam3FrameModel:
    """The model on the meta device: random-weight layout, no memory, no init work."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    cfg = replace(cfg, name=f"{cfg.name}-meta")  # not a packaged name: no weights are read
    return Sam3FrameModel(build_sam3(cfg, device="meta", dtype=dtype))


def network_counts(
    frame_model: Sam3FrameModel,
    n: int,
    spatial: int,
    pointers: int,
    *,
    image_hw: tuple[int, int] = (720, 1280),
    memory_dtype: torch.dtype = torch.bfloat16,
) -> FrameCounts:
    """Per-stage counts of one steady frame's network calls for n objects."""
    counter = OpCounter(meta_values=True)
    config = frame_model.model.config.tracker
    g, device = config.grid_size, frame_model.device
    dtype = frame_model._param.dtype
    image = np.zeros((*image_hw, 3), dtype=np.uint8)
    with torch.inference_mode():
        concept = frame_model.encode_concept(Concept(text="object"))
        memory = MemoryBatch(
            features=torch.empty(
                n, spatial, config.mem_dim, g, g, dtype=memory_dtype, device=device
            ),
            offsets=torch.zeros(n, spatial, dtype=torch.long, device=device),
            valid=torch.ones(n, spatial, dtype=torch.bool, device=device),
            pointers=torch.empty(n, pointers, config.d_model, dtype=dtype, device=device),
            pointer_distances=torch.ones(n, pointers, device=device),
            pointer_valid=torch.ones(n, pointers, dtype=torch.bool, device=device),
        )
        m = frame_model.mask_size
        logits = torch.empty(n, m, m, device=device)
        scores = torch.ones(n, device=device)
        from_prompt = torch.zeros(n, dtype=torch.bool, device=device)
        for _ in range(2):  # the second frame, as a stream's: per-size tables already made
            with counter.frame() as record:
                with counter.stage("backbone"):
                    (features,) = frame_model.encode_images([image])
                with counter.stage("detect"):
                    frame_model.detect(features, [concept])
                with counter.stage("track"):
                    frame_model.track(features, memory)
                with counter.stage("memory"):
                    frame_model.encode_memory(features, logits, scores, from_prompt)
    return record
