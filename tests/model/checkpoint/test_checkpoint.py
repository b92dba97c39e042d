"""Checkpoint contract: the official key set, strict loading, readable errors, the HF remap."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model.checkpoint.format import CheckpointError, CheckpointFormat
from model.checkpoint.hf import HF_ABSENT_PATTERNS, remap_hf
from model.checkpoint.read import read_checkpoint
from model.checkpoint.strict import load_state
from model.config import CONFIGS
from model.sam3 import Sam3

KEYS_TSV = Path(__file__).parents[1] / "data" / "sam3-official-state-dict-keys.tsv"


def official_keys() -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype) of the 1465 tensors in `sam3.pt` (research TSV, copied into the repo)."""
    out = {}
    for line in KEYS_TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        out[key] = (tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype.strip())
    return out


@pytest.fixture(scope="module")
def full_meta() -> Sam3:
    return Sam3(CONFIGS["sam3"], device="meta")


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in Sam3(CONFIGS["tiny"]).state_dict().items()}


def _zero_stride(shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """A full-size tensor backed by one element: the file and memory stay tiny."""
    return torch.zeros(1, dtype=getattr(torch, dtype)).expand(shape)


# --- the official key contract -----------------------------------------------------------------


def test_backbone_keys_equal_the_official_list(full_meta: Sam3) -> None:
    ours = {
        k: tuple(v.shape)
        for k, v in full_meta.state_dict().items()
        if k.startswith("detector.backbone.")
    }
    ref = {k: s for k, (s, _) in official_keys().items() if k.startswith("detector.backbone.")}
    assert ours == ref  # 759 keys: trunk, both necks, text encoder, resizer


def test_whole_model_has_exactly_the_official_keys(full_meta: Sam3) -> None:
    ours = {
        k: (tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in full_meta.state_dict().items()
    }
    ref = official_keys()
    missing, unexpected = sorted(set(ref) - set(ours)), sorted(set(ours) - set(ref))
    assert (missing, unexpected) == ([], []), (
        f"missing {missing[:10]}, unexpected {unexpected[:10]}"
    )
    assert {k: ours[k] for k in ref if ours[k] != ref[k]} == {}
    params = sum(p.numel() for p in full_meta.parameters())
    print(f"sam3 parameters: {params:,}")  # 860,055,224 (official video model)
    assert 840e6 <= params <= 861e6


def test_official_state_dict_loads_through_the_real_loader(tmp_path: Path) -> None:
    state = {k: _zero_stride(s, d) for k, (s, d) in official_keys().items()}
    path = tmp_path / "sam3.pt"
    torch.save({"model": state}, path)
    model = Sam3(CONFIGS["sam3"], device="meta")
    report = load_state(model, read_checkpoint(path))
    assert report.loaded == 1465 and report.recomputed == report.zero_filled == ()
    assert not any(t.is_meta for t in model.state_dict().values())
    assert model.detector.backbone.vision_backbone.trunk.blocks[7].attn.freqs_cis.shape == (
        5184,
        32,
    )


# --- strict loading and its errors ---------------------------------------------------------------


def _load_tiny(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(state, path)
    load_state(Sam3(CONFIGS["tiny"], device="meta"), read_checkpoint(path))


def test_tiny_round_trip_is_exact(tiny_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(tiny_state, path)
    model = Sam3(CONFIGS["tiny"], device="meta")
    load_state(model, read_checkpoint(path))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, tiny_state[key], rtol=0, atol=0)


def test_missing_unexpected_and_mismatched_in_one_error(
    tiny_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    state = dict(tiny_state)
    del state["detector.backbone.language_backbone.resizer.weight"]
    for key in [k for k in state if k.startswith("tracker.maskmem_backbone.fuser.")]:
        del state[key]
    state["detector.extra_head.weight"] = torch.zeros(3)
    state["detector.backbone.vision_backbone.trunk.pos_embed"] = torch.zeros(1, 5, 7)
    with pytest.raises(CheckpointError) as err:
        _load_tiny(state, tmp_path)
    text = str(err.value)
    assert "keys missing from the checkpoint" in text
    assert "detector.backbone.language_backbone.resizer (1)" in text
    assert "tracker.maskmem_backbone.fuser.layers.* (" in text  # grouped with a count
    assert "1 keys unexpected in the checkpoint" in text and "detector.extra_head (1)" in text
    assert "trunk.pos_embed: (1, 17, 32) vs (1, 5, 7)" in text


def test_truncated_file(tiny_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    torch.save(tiny_state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
        read_checkpoint(tmp_path / "bad.safetensors")


def test_random_bytes_are_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "random.pt"
    path.write_bytes(bytes(range(256)) * 4)  # starts with opcodes torch's safe unpickler refuses
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a") and "\n" not in message
    assert "Check the documentation" not in message


class _NotATensor:
    pass


def test_pickle_with_python_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": _NotATensor()}}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        read_checkpoint(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(CheckpointError):
        read_checkpoint(plain)


def test_non_tensor_entries_and_non_dicts(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(1), "epoch": 3}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="1 entries are not tensors: \\['epoch'\\]"):
        read_checkpoint(tmp_path / "mixed.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a state dict, found list"):
        read_checkpoint(tmp_path / "list.pt")


def test_passthrough_prefixes_are_reported(
    tiny_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    state = {**tiny_state, "tracker.future_module.weight": torch.zeros(2)}
    path = tmp_path / "t.pt"
    torch.save(state, path)
    report = load_state(
        Sam3(CONFIGS["tiny"], device="meta"),
        read_checkpoint(path),
        passthrough_prefixes=("tracker.",),
    )
    assert report.passed_through == ("tracker.future_module.weight",)


# --- the HF layout --------------------------------------------------------------------------------


def test_hf_transforms_are_inverted() -> None:
    q, k, v = torch.randn(4, 4), torch.randn(4, 4), torch.randn(4, 4)
    pos = torch.randn(1, 9, 4)
    proj = torch.randn(3, 4)
    point = torch.randn(4, 6)
    gauss = torch.randn(2, 3)
    hf = {
        "detector_model.vision_encoder.backbone.layers.0.attention.q_proj.weight": q,
        "detector_model.vision_encoder.backbone.layers.0.attention.k_proj.weight": k,
        "detector_model.vision_encoder.backbone.layers.0.attention.v_proj.weight": v,
        "detector_model.vision_encoder.backbone.embeddings.position_embeddings": pos,
        "detector_model.text_encoder.text_projection.weight": proj,
        "tracker_model.prompt_encoder.point_embed.weight": point,
        "tracker_model.prompt_encoder.shared_embedding.positional_embedding": gauss,
        "tracker_model.shared_image_embedding.positional_embedding": gauss,
        "tracker_neck.fpn_layers.0.scale_layers.0.weight": q,
        "tracker_neck.fpn_layers.0.scale_layers.2.weight": k,
        "tracker_model.object_pointer_proj.proj_in.weight": q,
        "tracker_model.object_pointer_proj.layers.0.weight": k,
        "tracker_model.object_pointer_proj.proj_out.weight": v,
    }
    out = remap_hf(hf)
    trunk = "detector.backbone.vision_backbone.trunk."
    torch.testing.assert_close(out[trunk + "blocks.0.attn.qkv.weight"], torch.cat([q, k, v]))
    assert out[trunk + "pos_embed"].shape == (1, 10, 4) and not out[trunk + "pos_embed"][0, 0].any()
    torch.testing.assert_close(out[trunk + "pos_embed"][:, 1:], pos)
    torch.testing.assert_close(
        out["detector.backbone.language_backbone.encoder.text_projection"], proj.T
    )
    torch.testing.assert_close(
        out["tracker.sam_prompt_encoder.point_embeddings.2.weight"], point[2:3]
    )
    assert "tracker.shared_image_embedding.positional_embedding" not in out
    torch.testing.assert_close(
        out["detector.backbone.vision_backbone.sam2_convs.0.dconv_2x2_1.weight"], k
    )
    assert [
        out[f"tracker.obj_ptr_proj.layers.{i}.weight"] is t for i, t in enumerate((q, k, v))
    ] == [True] * 3
    assert (
        "detector_model.vision_encoder.backbone.layers.0.attention.q_proj.weight" in hf
    )  # input untouched


def test_hf_partial_qkv_and_unknown_keys_surface() -> None:
    out = remap_hf(
        {
            "detector_model.detr_encoder.layers.0.self_attn.q_proj.weight": torch.zeros(2, 2),
            "detector_model.mystery": torch.zeros(1),
        }
    )
    assert "detector.mystery" in out
    assert any("only q of q/k/v" in k for k in out)


def test_hf_folder_and_shards(tmp_path: Path) -> None:
    a = {"detector_model.text_projection.weight": torch.randn(4, 8)}
    b = {"detector_model.text_projection.bias": torch.randn(4)}
    save_file(a, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file(b, str(tmp_path / "model-00002-of-00002.safetensors"))
    weight_map = {
        **dict.fromkeys(a, "model-00001-of-00002.safetensors"),
        **dict.fromkeys(b, "model-00002-of-00002.safetensors"),
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    ckpt = read_checkpoint(tmp_path)
    assert ckpt.format is CheckpointFormat.HF and ckpt.absent == HF_ABSENT_PATTERNS
    assert set(ckpt.state_dict) == {
        "detector.backbone.language_backbone.resizer.weight",
        "detector.backbone.language_backbone.resizer.bias",
    }
