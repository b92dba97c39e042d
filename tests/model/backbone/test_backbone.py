"""Backbone pieces on the tiny config: shapes, dtypes, pure helpers (RoPE, windows, positions)."""

from __future__ import annotations

import math

import pytest
import torch

from model.backbone.vision_language import Sam3Backbone
from model.backbone.vit import tile_position_embedding, window_partition, window_unpartition
from model.config import CONFIGS
from model.nn.layers import PackedMultiheadAttention, attention
from model.nn.position import sine_position_grid
from model.nn.rope import apply_rotary, axial_rope_freqs

TINY = CONFIGS["tiny"]


@pytest.fixture(scope="module")
def backbone() -> Sam3Backbone:
    torch.manual_seed(0)
    return Sam3Backbone(TINY.vit, TINY.neck, TINY.text).eval()


def test_image_features_shapes_and_positions(backbone: Sam3Backbone) -> None:
    images = torch.randn(2, 3, TINY.vit.image_size, TINY.vit.image_size)
    with torch.no_grad():
        feats = backbone.forward_image(images)
    g, d = TINY.vit.grid_size, TINY.neck.d_model
    expected = [(2, d, 4 * g, 4 * g), (2, d, 2 * g, 2 * g), (2, d, g, g)]
    assert [tuple(m.shape) for m in feats.detector_maps] == expected
    assert feats.tracker_maps is not None and feats.tracker_pos is not None
    assert [tuple(m.shape) for m in feats.tracker_maps] == expected
    assert [tuple(p.shape) for p in feats.detector_pos] == expected
    assert all(torch.isfinite(m).all() for m in feats.detector_maps + feats.tracker_maps)
    # the two necks have separate weights, the positions depend only on the grid
    assert not torch.allclose(feats.detector_maps[0], feats.tracker_maps[0])
    torch.testing.assert_close(feats.detector_pos[1], feats.tracker_pos[1])


def test_batch_equals_single_and_tracker_optional(backbone: Sam3Backbone) -> None:
    images = torch.randn(3, 3, TINY.vit.image_size, TINY.vit.image_size)
    with torch.no_grad():
        batch = backbone.forward_image(images)
        single = backbone.forward_image(images[1:2], tracker=False)
    assert single.tracker_maps is None and single.tracker_pos is None
    for b, s in zip(batch.detector_maps, single.detector_maps, strict=True):
        torch.testing.assert_close(b[1:2], s, atol=1e-5, rtol=1e-5)


def test_other_input_size_runs(backbone: Sam3Backbone) -> None:
    """Global blocks recompute RoPE for another grid; windows pad; abs-pos tiles."""
    with torch.no_grad():
        feats = backbone.forward_image(torch.randn(1, 3, 14 * 10, 14 * 10))
    assert feats.detector_maps[2].shape[-2:] == (10, 10)


def test_bad_image_shape_is_rejected(backbone: Sam3Backbone) -> None:
    with pytest.raises(ValueError, match="multiples of 14"):
        backbone.forward_image(torch.randn(1, 3, 100, 112))


def test_text_features(backbone: Sam3Backbone) -> None:
    ids = torch.zeros(2, TINY.text.context_length, dtype=torch.long)
    ids[0, :4] = torch.tensor([512, 7, 8, 513])
    ids[1, :3] = torch.tensor([512, 9, 513])
    with torch.no_grad():
        text = backbone.forward_text(ids)
        longer = backbone.forward_text(ids[:, :6])
    assert text.tokens.shape == (2, TINY.text.context_length, TINY.text.out_dim)
    assert text.padding_mask[0].tolist()[:5] == [False, False, False, False, True]
    # causal attention: a real token never sees what follows it
    torch.testing.assert_close(text.tokens[:, :6], longer.tokens, atol=1e-5, rtol=1e-5)


def test_bfloat16_module(backbone: Sam3Backbone) -> None:
    bf16 = Sam3Backbone(TINY.vit, TINY.neck, TINY.text, dtype=torch.bfloat16).eval()
    with torch.no_grad():
        feats = bf16.forward_image(torch.randn(1, 3, TINY.vit.image_size, TINY.vit.image_size))
    assert feats.detector_maps[0].dtype == torch.bfloat16
    assert bf16.vision_backbone.trunk.blocks[0].attn.freqs_cis.dtype == torch.complex64


# --- pure helpers ------------------------------------------------------------------------------


def test_rope_is_a_rotation_with_relative_dot_products() -> None:
    freqs = axial_rope_freqs(16, 4, 4)
    assert freqs.shape == (16, 8) and freqs.dtype == torch.complex64
    q, k = torch.randn(16, 16), torch.randn(16, 16)
    rq = apply_rotary(q, freqs)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    # same vector at every position: <R(i) q, R(j) k> depends only on the offset i - j along x
    q0, k0 = q[:1].expand(16, 16), k[:1].expand(16, 16)
    dots = apply_rotary(q0, freqs) @ apply_rotary(k0, freqs).T
    torch.testing.assert_close(dots[1, 0], dots[2, 1], atol=1e-5, rtol=1e-5)  # x offset 1, same row
    torch.testing.assert_close(dots[5, 4], dots[6, 5], atol=1e-5, rtol=1e-5)


def test_rope_matches_the_pairwise_formula() -> None:
    freqs = axial_rope_freqs(8, 3, 2, scale=0.5)
    x = torch.randn(6, 8)
    out = apply_rotary(x, freqs)
    angle = freqs.angle()
    even, odd = x[:, 0::2], x[:, 1::2]
    manual = torch.stack(
        (even * angle.cos() - odd * angle.sin(), even * angle.sin() + odd * angle.cos()), dim=-1
    ).flatten(-2)
    torch.testing.assert_close(out, manual, atol=1e-6, rtol=1e-6)
    # token 4 sits at x = 1, y = 1; with scale 0.5 its x angle for the first frequency is 0.5
    assert math.isclose(angle[4, 0].item(), 0.5, rel_tol=1e-6)


def test_window_partition_round_trip_with_padding() -> None:
    x = torch.randn(2, 7, 9, 3)
    windows, padded = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 4, 4, 3) and padded == (8, 12)
    torch.testing.assert_close(window_unpartition(windows, 4, padded, (7, 9)), x)


def test_tile_position_embedding_repeats_the_grid() -> None:
    table = torch.randn(1, 1 + 4, 5)  # cls slot + 2 x 2 grid
    tiled = tile_position_embedding(table, 5, 3)
    assert tiled.shape == (1, 5, 3, 5)
    torch.testing.assert_close(tiled[0, 2, 2], table[0, 1 + 0 * 2 + 0])
    torch.testing.assert_close(tiled[0, 3, 1], table[0, 1 + 1 * 2 + 1])


def test_sine_grid_values() -> None:
    pos = sine_position_grid(3, 4, 8)
    assert pos.shape == (8, 3, 4)
    y_last = 3 / (3 + 1e-6) * 2 * math.pi
    assert math.isclose(pos[0, 2, 0].item(), math.sin(y_last), abs_tol=1e-6)  # y features first
    x_first = 1 / (4 + 1e-6) * 2 * math.pi
    assert math.isclose(pos[4, 0, 0].item(), math.sin(x_first), abs_tol=1e-6)
    assert math.isclose(pos[5, 0, 0].item(), math.cos(x_first), abs_tol=1e-6)


def test_attention_fast_equals_manual_with_masks() -> None:
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    blocked = torch.zeros(2, 1, 1, 7, dtype=torch.bool)
    blocked[0, ..., 5:] = True
    fast = attention(q, k, v, mask=blocked)
    slow = attention(q, k, v, mask=blocked, fast=False)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    # blocked keys have no influence
    v2 = v.clone()
    v2[0, :, 5:] += 100.0
    torch.testing.assert_close(attention(q, k, v2, mask=blocked)[0], fast[0], atol=1e-5, rtol=1e-5)


def test_packed_attention_matches_torch_multihead() -> None:
    torch.manual_seed(0)
    ours = PackedMultiheadAttention(16, 4)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x, mem = torch.randn(2, 5, 16), torch.randn(2, 6, 16)
    pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    expected = ref(x, mem, mem, key_padding_mask=pad, need_weights=False)[0]
    torch.testing.assert_close(
        ours(x, mem, mem, key_padding_mask=pad), expected, atol=1e-5, rtol=1e-5
    )
