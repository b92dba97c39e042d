"""Weight averaging of native checkpoints (`python -m model.embedded.train.average`) on the tiny config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.build import build_sam3
from model.checkpoint.format import CheckpointError
from model.checkpoint.native import save_native
from model.checkpoint.read import read_checkpoint
from model.config import CONFIGS, Sam3Config
from model.embedded.train.average import average_checkpoints, main

TINY = CONFIGS["tiny"]


def _saved(tmp_path: Path, name: str, seed: int, config: Sam3Config = TINY) -> Path:
    torch.manual_seed(seed)
    path = tmp_path / f"{name}.safetensors"
    save_native(path, build_sam3(config), config)
    return path


def test_average_is_the_mean_and_loads_strictly(tmp_path: Path) -> None:
    newer = replace(TINY, video=replace(TINY.video, untangle_margin=2.0))  # loop settings only
    paths = [_saved(tmp_path, "a", 0), _saved(tmp_path, "b", 1), _saved(tmp_path, "c", 2, newer)]
    out = tmp_path / "soup" / "avg.safetensors"
    main(["--out", str(out), *map(str, paths)])

    model = build_sam3(None, out)  # strict load; config and tokenizer from the file
    assert model.config == newer  # the last checkpoint's loop settings
    states = [read_checkpoint(p).state_dict for p in paths]
    averaged = model.state_dict()
    key = "detector.backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight"
    assert not torch.equal(states[0][key], states[1][key])
    expected = (states[0][key].double() + states[1][key].double() + states[2][key].double()) / 3
    torch.testing.assert_close(averaged[key], expected.float())


def test_average_refuses_different_networks_and_other_formats(tmp_path: Path) -> None:
    other = replace(
        TINY, detector=replace(TINY.detector, num_queries=TINY.detector.num_queries + 1)
    )
    checkpoints = [
        read_checkpoint(_saved(tmp_path, "a", 0)),
        read_checkpoint(_saved(tmp_path, "b", 1, other)),
    ]
    with pytest.raises(CheckpointError, match="networks or tokenizer differ"):
        average_checkpoints(checkpoints)
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints(checkpoints[:1])
    official = tmp_path / "official.pt"  # an official-layout file records no config
    torch.save(build_sam3(TINY).state_dict(), official)
    with pytest.raises(CheckpointError, match="only native checkpoints"):
        average_checkpoints([checkpoints[0], read_checkpoint(official)])
