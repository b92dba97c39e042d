"""Parity with HF transformers 5.23 (extra `parity`, a hard import: CI must install it).

Same weights -> same outputs within 1e-4 in float32.

Weights go HF -> official names through the production remap (`checkpoint_hf.remap_hf`), so these
tests also check the remap's tensor transforms numerically.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    Sam3VisionConfig,
    Sam3ViTConfig,
)
from transformers.models.sam3.modeling_sam3 import Sam3VisionModel, Sam3ViTLayer

from model.backbone.text import TextEncoder
from model.backbone.tokenizer import Tokenizer
from model.backbone.vision_language import VisionBackbone
from model.backbone.vit import Block
from model.checkpoint.hf import remap_hf
from model.config import CONFIGS, TextConfig, VitConfig

pytestmark = pytest.mark.parity
ATOL = RTOL = 1e-4


def _official(
    hf_state: dict[str, torch.Tensor], hf_prefix: str, official_prefix: str
) -> dict[str, torch.Tensor]:
    """Prefix HF keys as in `Sam3VideoModel`, remap, keep the part under `official_prefix`."""
    remapped = remap_hf({hf_prefix + k: v for k, v in hf_state.items()})
    assert all(k.startswith(official_prefix) for k in remapped), sorted(remapped)[:5]
    return {k[len(official_prefix) :]: v for k, v in remapped.items()}


@pytest.mark.parametrize("window", [24, 0], ids=["windowed", "global"])
def test_full_width_vit_block(window: int) -> None:
    torch.manual_seed(0)
    # 672 px -> 48 x 48 tokens: four 24 x 24 windows; the global block interpolates RoPE by 24/48
    vit = replace(VitConfig(), image_size=672)
    hf_config = Sam3ViTConfig(
        hidden_size=vit.width, intermediate_size=vit.mlp_dim, num_attention_heads=vit.num_heads,
        image_size=vit.image_size, patch_size=vit.patch_size, window_size=vit.window_size,
        layer_norm_eps=vit.layer_norm_eps,
    )  # fmt: skip
    hf = Sam3ViTLayer(hf_config, window_size=window).eval()
    for p in hf.parameters():  # HF leaves biases at zero and norms at one: randomise everything
        torch.nn.init.normal_(p, std=0.05)
    ours = Block(vit, window_size=window, device=None, dtype=None).eval()
    state = _official(
        hf.state_dict(),
        "detector_model.vision_encoder.backbone.layers.0.",
        "detector.backbone.vision_backbone.trunk.blocks.0.",
    )
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert (missing, unexpected) == (["attn.freqs_cis"], [])  # HF recomputes RoPE; so do we
    x = torch.randn(1, 48, 48, vit.width)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x), atol=ATOL, rtol=RTOL)


def test_full_size_text_encoder() -> None:
    torch.manual_seed(0)
    text = TextConfig()
    hf_config = CLIPTextConfig(
        vocab_size=text.vocab_size, hidden_size=text.width, intermediate_size=text.mlp_dim,
        num_hidden_layers=text.depth, num_attention_heads=text.num_heads,
        max_position_embeddings=text.context_length, projection_dim=text.projection_dim,
        hidden_act="gelu", layer_norm_eps=text.layer_norm_eps,
    )  # fmt: skip
    hf_text = CLIPTextModelWithProjection(hf_config).eval()
    hf_resizer = torch.nn.Linear(text.width, text.out_dim)  # Sam3Model.text_projection
    for p in [*hf_text.parameters(), *hf_resizer.parameters()]:
        torch.nn.init.normal_(
            p, mean=1.0 if p.ndim == 1 and p.shape[0] == text.width else 0.0, std=0.02
        )
    hf_state = {f"text_encoder.{k}": v for k, v in hf_text.state_dict().items()}
    hf_state |= {f"text_projection.{k}": v for k, v in hf_resizer.state_dict().items()}
    ours = TextEncoder(text, device=torch.device("meta"))
    ours.load_state_dict(
        _official(hf_state, "detector_model.", "detector.backbone.language_backbone."),
        strict=True,
        assign=True,
    )
    ours.eval()
    ids = Tokenizer.from_clip_bpe()(["a red car", "a person riding a bike on a sunny day"]).ids
    with torch.no_grad():
        expected = hf_resizer(hf_text(input_ids=ids).last_hidden_state)
        torch.testing.assert_close(ours(ids), expected, atol=ATOL, rtol=RTOL)


def test_tiny_vision_backbone() -> None:
    torch.manual_seed(0)
    tiny = CONFIGS["tiny"]
    vit, neck = tiny.vit, replace(tiny.neck, tracker_neck=False)  # HF's vision model has one neck
    g = vit.grid_size
    hf_config = Sam3VisionConfig(
        backbone_config=Sam3ViTConfig(
            hidden_size=vit.width, intermediate_size=vit.mlp_dim, num_hidden_layers=vit.depth,
            num_attention_heads=vit.num_heads, image_size=vit.image_size, patch_size=vit.patch_size,
            window_size=vit.window_size, global_attn_indexes=list(vit.global_blocks),
            pretrain_image_size=vit.pretrain_image_size, layer_norm_eps=vit.layer_norm_eps,
        ),
        fpn_hidden_size=neck.d_model, backbone_feature_sizes=[[4 * g, 4 * g], [2 * g, 2 * g], [g, g]],
    )  # fmt: skip
    hf = Sam3VisionModel(hf_config).eval()
    for p in hf.parameters():
        torch.nn.init.normal_(p, std=0.05)
    ours = VisionBackbone(vit, neck).eval()
    state = _official(
        hf.state_dict(), "detector_model.vision_encoder.", "detector.backbone.vision_backbone."
    )
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert unexpected == [] and all(k.endswith("attn.freqs_cis") for k in missing)
    images = torch.randn(2, 3, vit.image_size, vit.image_size)
    with torch.no_grad():
        out = hf(pixel_values=images)
        feats = ours(images, tracker=False)
        trunk = ours.trunk(images).flatten(2).transpose(1, 2)
    torch.testing.assert_close(trunk, out.last_hidden_state, atol=ATOL, rtol=RTOL)
    for level in range(neck.num_levels):
        torch.testing.assert_close(
            feats.detector_maps[level], out.fpn_hidden_states[level], atol=ATOL, rtol=RTOL
        )
        torch.testing.assert_close(
            feats.detector_pos[level], out.fpn_position_encoding[level], atol=ATOL, rtol=RTOL
        )
