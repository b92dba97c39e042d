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
RoPE tables are recomputed per call from the grid size (pure, cheap, nothing to restore after a
meta-device build, and never rounded by a `.to(bfloat16)`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.layers import Factory, attention, merge_heads, split_heads
from model.nn.position import sine_position_grid
from model.nn.rope import apply_rotary, axial_rope_freqs
from model.tracker.memory_bank import MemoryBatch


class MemoryTokens(NamedTuple):
    """B objects' memories as attention keys: tokens and pos (B, L, mem_dim), spatial grids first
    and `num_obj_ptr_tokens` pointer tokens last; padding (B, L) bool (True = padding) or None."""

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
        padding=padding if bool(padding.any()) else None,
        num_obj_ptr_tokens=p * k,
    )


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

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        freqs_cis: torch.Tensor,
        num_k_exclude_rope: int = 0,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """q (B, HW, C); k, v (B, Lk, C_kv); freqs_cis (HW, D/2); key_padding_mask (B, Lk) True =
        padding. The first Lk - num_k_exclude_rope keys must be whole g x g grids."""
        q = split_heads(self.q_proj(q), self.num_heads)  # B x H x HW x D
        k = split_heads(self.k_proj(k), self.num_heads)  # B x H x Lk x D
        v = split_heads(self.v_proj(v), self.num_heads)

        q = apply_rotary(q, freqs_cis)
        num_rope = k.shape[-2] - num_k_exclude_rope
        if num_rope % freqs_cis.shape[0]:
            raise ValueError(f"{num_rope} RoPE keys are not whole {freqs_cis.shape[0]}-token grids")
        if num_rope > 0:
            repeats = num_rope // freqs_cis.shape[0]
            k_rope = apply_rotary(k[:, :, :num_rope], freqs_cis.repeat(repeats, 1))
            k = torch.cat([k_rope, k[:, :, num_rope:]], dim=2)

        mask = None
        if key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]  # B x 1 x 1 x Lk, True = blocked
        out: torch.Tensor = self.out_proj(merge_heads(attention(q, k, v, mask=mask)))  # B x HW x C
        return out


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
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        *,
        freqs_cis: torch.Tensor,
        num_obj_ptr_tokens: int,
        memory_padding: torch.Tensor | None,
    ) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, freqs_cis=freqs_cis)
        y = self.norm2(x)
        x = x + self.cross_attn_image(
            y,
            memory + memory_pos,
            memory,
            freqs_cis=freqs_cis,
            num_k_exclude_rope=num_obj_ptr_tokens,
            key_padding_mask=memory_padding,
        )
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

    def forward(
        self, features: torch.Tensor, features_pos: torch.Tensor, memory: MemoryTokens
    ) -> torch.Tensor:
        """Condition B objects' features (B, C, h, w) on their memories; features_pos
        (1 | B, C, h, w) is the features' sine position. Returns (B, C, h, w)."""
        batch, channels, h, w = features.shape
        if memory.tokens.shape[0] != batch or memory.pos.shape != memory.tokens.shape:
            raise ValueError(
                f"memory {tuple(memory.tokens.shape)} / position {tuple(memory.pos.shape)} "
                f"do not match {batch} objects"
            )
        x = features + self.input_pos_scale * features_pos
        x = x.flatten(2).transpose(1, 2)  # B x HW x C
        freqs_cis = axial_rope_freqs(
            self.head_dim,
            w,
            h,
            theta=self.rope_theta,
            device=x.device,
            dtype=torch.promote_types(x.dtype, torch.float32),  # complex128 for float64 runs
        )
        for layer in self.layers:
            x = layer(
                x,
                memory.tokens,
                memory.pos,
                freqs_cis=freqs_cis,
                num_obj_ptr_tokens=memory.num_obj_ptr_tokens,
                memory_padding=memory.padding,
            )
        normed: torch.Tensor = self.norm(x)
        return normed.transpose(1, 2).reshape(batch, channels, h, w)  # B x C x h x w
