"""Memory attention (`tracker.transformer.encoder`): the current frame's features attend to the
object's memories.

    x = features + 0.1 * sine position                                   (B, HW, C)
    4 x pre-norm layer:
        x += self_attn(norm1(x))                 RoPE on q and k over the g x g grid
        x += cross_attn_image(norm2(x), memory)  keys = memory + memory position; RoPE on q and
                                                 on every spatial memory's g x g keys (the grid
                                                 table repeated per memory); the object-pointer
                                                 tokens at the end get no RoPE
        x += linear2(relu(linear1(norm3(x))))
    out = norm(x)

Memories of different objects are padded to one length; `memory_padding` masks the padding out
of the cross-attention, so padded and unpadded objects give the same result.
Keys and values reach the layers already projected (`MemoryKV`): either projected here from
`MemoryTokens` on every call (the reference path, as the official code does) or assembled from
projections cached when each memory was stored (model/tracker/memory_kv.py). RoPE uses real
cos / sin tables cached per grid size, device and dtype (model/nn/rope.py), never rounded by a
`.to(bfloat16)` and rebuilt, not restored, after a meta-device build.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import Factory, merge_heads, split_heads
from model.nn.position import sine_position_grid
from model.nn.rope import RotaryTable, axial_rope_table, rotate
from model.tracker.attention_backend import attend, check_backend
from model.tracker.memory_bank import MemoryBatch


class MemoryTokens(NamedTuple):
    """B objects' memories as attention keys: tokens and pos (B, L, mem_dim), spatial grids first
    and `num_obj_ptr_tokens` pointer tokens last; padding (B, L) bool (True = padding) or None
    (no padding). `memory_tokens` always returns the mask: testing it for padding would read
    the device."""

    tokens: torch.Tensor
    pos: torch.Tensor
    padding: torch.Tensor | None
    num_obj_ptr_tokens: int


def memory_tokens(
    memory: MemoryBatch,
    *,
    tpos_enc: torch.Tensor,
    pointer_pos: torch.Tensor,
    dtype: torch.dtype,
) -> MemoryTokens:
    """Flatten padded memories (official `_prepare_memory_conditioned_features` concatenation).

    Spatial memory j of object b: its h*w tokens, position = sine grid + tpos_enc[slot], where
    tpos_enc (num_maskmem, mem_dim) and slot = offset - 1 (offset 0, a conditioning memory,
    takes the last row). Pointers (C,) are split into C / mem_dim tokens that share their
    temporal position pointer_pos (B, P, mem_dim).
    """
    b, s, cm, h, w = memory.features.shape
    num_slots = tpos_enc.shape[0]
    spatial = memory.features.to(dtype).permute(0, 1, 3, 4, 2).reshape(b, s * h * w, cm)
    work = torch.promote_types(dtype, torch.float32)  # float64 runs stay float64
    grid_pos = sine_position_grid(h, w, cm, device=spatial.device, dtype=work)  # Cm x h x w
    grid_pos = grid_pos.to(dtype).flatten(1).transpose(0, 1)  # hw x Cm
    tpos = tpos_enc[(memory.offsets - 1) % num_slots].to(dtype)  # B x S x Cm
    spatial_pos = (grid_pos[None, None] + tpos[:, :, None]).reshape(b, s * h * w, cm)
    spatial_pad = (~memory.valid).repeat_interleave(h * w, dim=1)  # B x S*hw

    p, channels = memory.pointers.shape[1:]
    k = channels // cm
    ptrs = memory.pointers.to(dtype).reshape(b, p * k, cm)  # B x P*k x Cm, k chunks per pointer
    ptr_pos = pointer_pos.to(dtype).repeat_interleave(k, dim=1)  # B x P*k x Cm
    ptr_pad = (~memory.pointer_valid).repeat_interleave(k, dim=1)  # B x P*k

    padding = torch.cat([spatial_pad, ptr_pad], dim=1)
    return MemoryTokens(
        tokens=torch.cat([spatial, ptrs], dim=1),
        pos=torch.cat([spatial_pos, ptr_pos], dim=1),
        padding=padding,
        num_obj_ptr_tokens=p * k,
    )


class MemoryKV(NamedTuple):
    """Memory keys and values as the cross-attention of every layer reads them: keys[l] and
    values[l] (B, L, C) after `k_proj` / `v_proj` (RoPE already applied to the spatial keys);
    mask (B, 1, 1, L) additive float (-inf = padding) or None when nothing is padded."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    mask: torch.Tensor | None


def padding_bias(padding: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, L) bool, True = padding -> (B, 1, 1, L) additive mask in `dtype`, built once per call
    and shared by every layer. A row that is all padding attends to everything instead (its
    result is discarded by the caller), so no row turns into NaN."""
    if padding is None:
        return None
    padding = padding & ~padding.all(dim=1, keepdim=True)
    zeros = torch.zeros(padding.shape, dtype=dtype, device=padding.device)
    return zeros.masked_fill(padding, float("-inf"))[:, None, None, :]


def rotate_heads(x: torch.Tensor, table: RotaryTable, num_heads: int) -> torch.Tensor:
    """RoPE on (..., L, H * D) merged-head vectors: each head's D channels turn by table (L, D/2)."""
    heads = x.reshape(*x.shape[:-1], num_heads, -1).transpose(-3, -2)  # ... x H x L x D
    return rotate(heads, table).transpose(-3, -2).flatten(-2)


class RoPEAttention(nn.Module):
    """Attention with 2-D axial RoPE on queries and (the first `L - num_k_exclude_rope`) keys."""

    def __init__(
        self,
        *,
        embedding_dim: int,
        num_heads: int,
        kv_in_dim: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.num_heads = num_heads
        self.head_dim = embedding_dim // num_heads
        self.q_proj = nn.Linear(embedding_dim, embedding_dim, **factory)
        self.k_proj = nn.Linear(kv_in_dim, embedding_dim, **factory)
        self.v_proj = nn.Linear(kv_in_dim, embedding_dim, **factory)
        self.out_proj = nn.Linear(embedding_dim, embedding_dim, **factory)
        self.backend = "auto"  # set by MemoryAttention (model/tracker/attention_backend.py)

    def project_keys(
        self, k: torch.Tensor, *, rope: RotaryTable, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """k_proj of keys (B, Lk, C_kv), RoPE on the first Lk - num_k_exclude_rope, which must be
        whole grids of rope's L tokens (one table shared by every grid): (B, Lk, C)."""
        keys: torch.Tensor = self.k_proj(k)
        grid = rope.cos.shape[0]
        num_rope = keys.shape[1] - num_k_exclude_rope
        if num_rope % grid:
            raise ValueError(f"{num_rope} RoPE keys are not whole {grid}-token grids")
        if num_rope == 0:
            return keys
        b, _, c = keys.shape
        spatial = keys[:, :num_rope].reshape(b, num_rope // grid, grid, c)  # B x S x L x C
        turned = rotate_heads(spatial, rope, self.num_heads).reshape(b, num_rope, c)
        return torch.cat([turned, keys[:, num_rope:]], dim=1) if num_k_exclude_rope else turned

    def attend(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        *,
        rope: RotaryTable,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """q (B, HW, C) against projected keys / values (B, Lk, C); mask (B, 1, 1, Lk) additive."""
        q = split_heads(rotate_heads(self.q_proj(q), rope, self.num_heads), self.num_heads)
        k = split_heads(keys, self.num_heads)  # B x H x Lk x D
        v = split_heads(values, self.num_heads)
        out = attend(q, k, v, mask=mask, backend=self.backend)  # B x H x HW x D
        projected: torch.Tensor = self.out_proj(merge_heads(out))  # B x HW x C
        return projected

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        rope: RotaryTable,
        num_k_exclude_rope: int = 0,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """q (B, HW, C); k, v (B, Lk, C_kv); rope over the g x g grid; key_padding_mask (B, Lk)
        True = padding. The first Lk - num_k_exclude_rope keys must be whole g x g grids."""
        keys = self.project_keys(k, rope=rope, num_k_exclude_rope=num_k_exclude_rope)
        mask = padding_bias(key_padding_mask, q.dtype)
        return self.attend(q, keys, self.v_proj(v), rope=rope, mask=mask)


class MemoryAttentionLayer(nn.Module):
    def __init__(
        self,
        *,
        d_model: int,
        num_heads: int,
        mem_dim: int,
        mlp_dim: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.self_attn = RoPEAttention(
            embedding_dim=d_model, num_heads=num_heads, kv_in_dim=d_model, **factory
        )
        self.cross_attn_image = RoPEAttention(
            embedding_dim=d_model, num_heads=num_heads, kv_in_dim=mem_dim, **factory
        )
        self.linear1 = nn.Linear(d_model, mlp_dim, **factory)
        self.linear2 = nn.Linear(mlp_dim, d_model, **factory)
        self.norm1 = nn.LayerNorm(d_model, **factory)
        self.norm2 = nn.LayerNorm(d_model, **factory)
        self.norm3 = nn.LayerNorm(d_model, **factory)

    def forward(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        *,
        rope: RotaryTable,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x (B, HW, C); this layer's projected memory keys / values (B, L, C)."""
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, rope=rope)
        y = self.norm2(x)
        x = x + self.cross_attn_image.attend(y, keys, values, rope=rope, mask=mask)
        y = self.norm3(x)
        mlp_out: torch.Tensor = self.linear2(F.relu(self.linear1(y)))
        return x + mlp_out


class MemoryAttention(nn.Module):
    def __init__(
        self,
        *,
        d_model: int,
        mem_dim: int,
        num_layers: int,
        num_heads: int,
        mlp_dim: int,
        rope_theta: float,
        input_pos_scale: float,
        backend: str = "auto",
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(
                d_model=d_model, num_heads=num_heads, mem_dim=mem_dim, mlp_dim=mlp_dim, **factory
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, **factory)
        self.head_dim = d_model // num_heads
        self.rope_theta = rope_theta
        self.input_pos_scale = input_pos_scale
        self.set_backend(backend)

    def set_backend(self, backend: str) -> None:
        """The kernel of the memory cross-attention (model/tracker/attention_backend.py)."""
        check_backend(backend)
        for layer in self.cross_layers():
            layer.cross_attn_image.backend = backend

    def cross_layers(self) -> list[MemoryAttentionLayer]:
        return [layer for layer in self.layers if isinstance(layer, MemoryAttentionLayer)]

    def rope_table(self, h: int, w: int, like: torch.Tensor) -> RotaryTable:
        """The cached cos / sin of the h x w grid (float32; float64 for float64 runs)."""
        return axial_rope_table(
            self.head_dim,
            w,
            h,
            theta=self.rope_theta,
            device=like.device,
            dtype=torch.promote_types(like.dtype, torch.float32),
        )

    def project(self, memory: MemoryTokens, rope: RotaryTable) -> MemoryKV:
        """The reference path: every layer projects the flattened memories (keys = memory +
        position, RoPE on the spatial keys; values = memory), on every call."""
        keys, values = [], []
        keyed = memory.tokens + memory.pos
        for layer in self.cross_layers():
            attn = layer.cross_attn_image
            keys.append(
                attn.project_keys(keyed, rope=rope, num_k_exclude_rope=memory.num_obj_ptr_tokens)
            )
            values.append(attn.v_proj(memory.tokens))
        return MemoryKV(tuple(keys), tuple(values), padding_bias(memory.padding, keys[0].dtype))

    def forward(
        self,
        features: torch.Tensor,
        features_pos: torch.Tensor,
        memory: MemoryTokens | MemoryKV,
    ) -> torch.Tensor:
        """Condition B objects' features (B, C, h, w) on their memories; features_pos
        (1 | B, C, h, w) is the features' sine position. Returns (B, C, h, w)."""
        batch, channels, h, w = features.shape
        x = features + self.input_pos_scale * features_pos
        x = x.flatten(2).transpose(1, 2)  # B x HW x C
        rope = self.rope_table(h, w, x)
        if isinstance(memory, MemoryTokens):
            if memory.tokens.shape[0] != batch or memory.pos.shape != memory.tokens.shape:
                raise ValueError(
                    f"memory {tuple(memory.tokens.shape)} / position {tuple(memory.pos.shape)} "
                    f"do not match {batch} objects"
                )
            memory = self.project(memory, rope)
        if len(memory.keys) != len(self.layers) or memory.keys[0].shape[0] != batch:
            raise ValueError(
                f"memory keys of {len(memory.keys)} layers do not match {batch} objects"
            )
        for layer, keys, values in zip(self.layers, memory.keys, memory.values, strict=True):
            x = layer(x, keys, values, rope=rope, mask=memory.mask)
        normed: torch.Tensor = self.norm(x)
        return normed.transpose(1, 2).reshape(batch, channels, h, w)  # B x C x h x w
