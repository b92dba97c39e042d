"""build_sam3: registry, native checkpoint round trip, tokenizer resolution, dtype and errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from model.backbone.tokenizer import train_bpe
from model.build import _resolve_tokenizer, build_sam3, inference_dtype
from model.checkpoint.format import CheckpointError, CheckpointFormat
from model.checkpoint.native import save_native
from model.checkpoint.read import read_checkpoint
from model.config import CONFIGS
from model.embedded.vocab import world_tokenizer


def test_tiny_builds_with_a_byte_level_tokenizer() -> None:
    model = build_sam3("tiny")
    assert not model.training and model.load_report is None
    assert model.tokenizer is not None and model.tokenizer.vocab_size == 514
    ids, mask = model.tokenize(["a red car"])
    assert ids.shape == (1, CONFIGS["tiny"].text.context_length) and not mask[0, 0]


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown config 'huge'; known: .*'sam3'.*'tiny'"):
        build_sam3("huge")


def test_official_size_gets_the_clip_vocab() -> None:
    tok = _resolve_tokenizer(CONFIGS["sam3"], None)
    assert tok.vocab_size == 49408 and tok(["visual"]).ids[0, 1].item() == 7195


def test_a_training_state_of_the_embedded_config_gets_the_world_vocab(tmp_path: Path) -> None:
    """`python -m model.embedded.train` saves weights only ({"model": ..., "phase": ...}); the
    embedded model's words must still be single tokens, not bytes. The vocab comes from the
    packaged weights' header (the runtime never imports the world), and it is the world's."""
    torch.manual_seed(0)
    model = build_sam3(CONFIGS["embedded"])
    state = tmp_path / "last.pt"
    torch.save({"model": model.state_dict(), "phase": "done", "step": 0}, state)
    loaded = build_sam3("embedded", state)
    expected = world_tokenizer(CONFIGS["embedded"].text.context_length)
    assert loaded.tokenizer.vocab_size == expected.vocab_size <= CONFIGS["embedded"].text.vocab_size
    assert loaded.tokenizer.encode("purple square") == expected.encode("purple square")
    assert len(loaded.tokenizer.encode("purple square")) == 2
    assert loaded.tokenizer.to_files() == expected.to_files()


def test_native_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_sam3("tiny", tokenizer=train_bpe(["red car", "person"] * 5, 600))
    path = tmp_path / "tiny.safetensors"
    save_native(path, model, model.config, tokenizer_files=model.tokenizer.to_files())
    again = build_sam3(None, path)  # config and tokenizer come from the file
    assert again.config == model.config
    assert again.load_report.recomputed  # RoPE tables are not stored, they are rebuilt
    assert again.tokenizer(["red car"]).ids.tolist() == model.tokenizer(["red car"]).ids.tolist()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)
    images = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        a = model.detector.encode_image(images, tracker=True)
        b = again.detector.encode_image(images, tracker=True)
    torch.testing.assert_close(a.detector_maps[0], b.detector_maps[0], rtol=0, atol=0)
    assert read_checkpoint(path).format is CheckpointFormat.NATIVE


def test_native_config_mismatch_is_refused(tmp_path: Path) -> None:
    model = build_sam3("tiny")
    path = tmp_path / "tiny.safetensors"
    save_native(path, model, model.config)
    with pytest.raises(CheckpointError, match="saved for config 'tiny'"):
        build_sam3("sam3", path)


def test_bfloat16_build_keeps_rope_complex(tmp_path: Path) -> None:
    model = build_sam3("tiny")
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    bf16 = build_sam3("tiny", path, device="cpu", dtype=torch.bfloat16)
    assert bf16.load_report.loaded == len(model.state_dict())
    assert bf16.vit.pos_embed.dtype == torch.bfloat16
    assert bf16.vit.blocks[0].attn.freqs_cis.dtype == torch.complex64
    with torch.no_grad():
        out = bf16.vit(torch.randn(1, 3, 112, 112, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_inference_dtype_is_bfloat16_only_where_native(monkeypatch: pytest.MonkeyPatch) -> None:
    assert inference_dtype("cpu", "float32") == torch.float32
    assert inference_dtype("cuda", "bfloat16") == torch.bfloat16  # explicit: no hardware check
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        inference_dtype("cpu", "half")
    for amx, avx512_bf16 in itertools.product((True, False), repeat=2):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        native = amx or avx512_bf16
        assert inference_dtype("cpu") == (torch.bfloat16 if native else torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_dtype("cuda") == torch.float32


@pytest.mark.gpu
def test_cuda_bfloat16_backbone() -> None:
    model = build_sam3("tiny", device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        feats = model.detector.encode_image(
            torch.randn(2, 3, 112, 112, device="cuda"), tracker=True
        )
    assert feats.detector_maps[0].is_cuda and feats.detector_maps[0].dtype == torch.bfloat16


def test_packaged_checkpoint_lookup_is_by_config_name() -> None:
    from model.build import PACKAGED_WEIGHTS, packaged_checkpoint

    assert packaged_checkpoint("tiny") is None  # no weights ship for tiny
    found = packaged_checkpoint("embedded")
    assert found is None or found.name == PACKAGED_WEIGHTS["embedded"]


def test_stored_video_thresholds_do_not_block_loading(tmp_path: Path) -> None:
    """Run-time thresholds may change between saving and loading; the architecture may not."""
    from dataclasses import replace

    tiny = CONFIGS["tiny"]
    path = tmp_path / "tiny.safetensors"
    save_native(path, build_sam3("tiny"), tiny)
    looser = replace(tiny, video=replace(tiny.video, new_det_thresh=0.3))
    assert build_sam3(looser, path).config.video.new_det_thresh == 0.3
    wider = replace(
        tiny, detector=replace(tiny.detector, num_queries=tiny.detector.num_queries + 1)
    )
    with pytest.raises(CheckpointError, match="architecture differs"):
        build_sam3(wider, path)
