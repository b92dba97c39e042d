"""The arithmetic a frame cannot avoid, from the config's shapes alone (multiply-add = 2 FLOPs).

Two stages dominate a SAM 3 frame and have a closed form:

* the ViT trunk: per block the qkv, output and MLP linears over T = g^2 tokens,
  2 T (4 W^2 + 2 W M), plus attention, 4 L^2 W per window of L tokens (QK^T and AV; global
  blocks have one window of T tokens); plus the patch-embedding convolution, 2 T 3 p^2 W;
* the tracker's memory attention, per object and layer: self-attention over L = g^2 tokens
  of width C (4 projections, 8 L C^2; attention 4 L^2 C), cross-attention from them to the
  K = S g^2 + P C / D memory tokens of width D (q and output projections 4 L C^2, k and v
  projections 4 K D C, attention 4 L K C) and the MLP, 4 L C H.

The other stages (necks, detector heads, mask decoder, memory encoder) are counted only
(bench/counting.py); their share at full size is about 10 %.
"""

from __future__ import annotations

import math

from model.config import Sam3Config


def vit_flops(config: Sam3Config) -> int:
    v = config.vit
    g, w, m = v.grid_size, v.width, v.mlp_dim
    t = g * g
    linears = 2 * t * (4 * w * w + 2 * w * m)
    windows = math.ceil(g / v.window_size) ** 2
    windowed = 4 * windows * (v.window_size**2) ** 2 * w
    global_ = 4 * t * t * w
    blocks = sum(linears + (global_ if b in v.global_blocks else windowed) for b in range(v.depth))
    patch = 2 * t * 3 * v.patch_size**2 * w
    return blocks + patch


def memory_attention_flops(config: Sam3Config, spatial: int, pointers: int) -> int:
    """Per object, attending to `spatial` memories and `pointers` object pointers."""
    c = config.tracker
    g = c.grid_size
    q, d, h = g * g, c.mem_dim, c.memory_mlp_dim
    width = c.d_model
    k = spatial * q + pointers * (width // d)
    self_attn = 8 * q * width * width + 4 * q * q * width
    cross = 4 * q * width * width + 4 * k * d * width + 4 * q * k * width
    mlp = 4 * q * width * h
    return c.memory_layers * (self_attn + cross + mlp)
