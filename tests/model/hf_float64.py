"""HF's SAM 3 tracker in the caller's precision, for float64 parity runs (transformers 5.23.0).

HF computes a few steps in float32 whatever the model's dtype (upcasts meant for bf16 weights):
RoPE tables and rotations, the object pointers' temporal sine code, and the mask resizes on the
way to the memory encoder. In a float64 comparison those steps round HF's side to ~1e-7 while
ours stays float64, and bf16 memory storage turns that into ~1e-3 a few frames later. The
patches below recompute exactly those steps in `promote_types(input dtype, float32)`: float32
runs are unchanged, float64 runs are float64 end to end. Nothing else in HF is touched.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

tracker_video = importlib.import_module(
    "transformers.models.sam3_tracker_video.modeling_sam3_tracker_video"
)
sam3_image = importlib.import_module("transformers.models.sam3.modeling_sam3")
TrackerVideo = tracker_video.Sam3TrackerVideoModel
_ORIGINAL = {
    "encode": TrackerVideo._encode_new_memory,
    "single_frame": TrackerVideo._run_single_frame_inference,
}


def _work(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Pairwise rotation: (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin) in x's working dtype."""
    x = x.to(_work(x.dtype))
    pairs = x.unflatten(-1, (-1, 2))
    turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + turned * sin


def apply_rope(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    num_k_exclude_rope: int = 0,
    repeat_freqs_k: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """HF `apply_rotary_pos_emb_2d` (ViT and memory attention) without the float32 upcast."""
    q_out = _rotate(q, cos, sin).to(q.dtype)
    num_rope = k.shape[-2] - num_k_exclude_rope
    if num_rope == 0:
        return q_out, k
    repeats = num_rope // q.shape[-2] if repeat_freqs_k else 1
    k_cos, k_sin = cos.repeat(1, 1, repeats, 1), sin.repeat(1, 1, repeats, 1)
    k_rope = _rotate(k[..., :num_rope, :], k_cos, k_sin).to(k.dtype)
    return q_out, torch.cat([k_rope, k[..., num_rope:, :]], dim=-2)


def rope_tables(self, x: torch.Tensor, position_ids: torch.Tensor):  # noqa: ANN001, ANN201
    """Memory-attention RoPE cos / sin tables in x's working dtype (HF: always float32)."""
    c = self.config
    heads = c.memory_attention_downsample_rate * c.memory_attention_num_attention_heads
    half = c.memory_attention_hidden_size // heads // 2
    exponents = torch.arange(0, half, 2, dtype=_work(x.dtype), device=x.device) / half
    inv_freq = 1.0 / c.rope_parameters["rope_theta"] ** exponents
    angles = position_ids[..., None].to(inv_freq) * inv_freq  # N x 2 x half / 2
    return self.recomposition_frequencies(angles.cos()), self.recomposition_frequencies(
        angles.sin()
    )


def sine_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """HF `get_1d_sine_pe` in the positions' dtype: (...,) -> (..., dim) as [sin | cos]."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=positions.dtype, device=positions.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def object_pointers(self, offsets, tokens, max_pointers, batch_size, channels, device):  # noqa: ANN001, ANN201
    """HF `_process_object_pointers` with the temporal distances in the pointers' dtype."""
    if not tokens:
        return None, None
    pointers = torch.stack(tokens)  # P x B x C
    distances = torch.tensor(offsets, dtype=_work(pointers.dtype), device=device)
    code = sine_1d(distances / (max_pointers - 1), channels).to(pointers.dtype)
    pos = self.temporal_positional_encoding_projection_layer(code)  # P x mem_dim
    pos = pos.unsqueeze(1).expand(-1, batch_size, self.mem_dim)
    splits = channels // self.mem_dim  # each pointer becomes `splits` memory tokens
    pointers = pointers.reshape(-1, batch_size, splits, self.mem_dim).permute(0, 2, 1, 3)
    return pointers.flatten(0, 1), pos.repeat_interleave(splits, dim=0)


def encode_new_memory(self, *, pred_masks_high_res, **kwargs):  # noqa: ANN001, ANN003, ANN201
    """Resize the masks to the memory-encoder size in their own dtype, then HF's encoder (which
    then finds them at the right size and skips its float32 resize)."""
    size = 4 * self.prompt_encoder.mask_input_size[0]
    masks = pred_masks_high_res
    if masks.shape[-2:] != (size, size):
        masks = F.interpolate(
            masks, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return _ORIGINAL["encode"](self, pred_masks_high_res=masks, **kwargs)


def single_frame_inference(self, **kwargs):  # noqa: ANN003, ANN201
    """HF's frame inference with the image-size masks (which its memories are encoded from)
    upsampled in the low-res masks' dtype instead of float32."""
    out = _ORIGINAL["single_frame"](self, **kwargs)
    if kwargs.get("mask_inputs") is None:
        size = (self.image_size, self.image_size)
        out["high_res_masks"] = F.interpolate(
            out["pred_masks"], size=size, mode="bilinear", align_corners=False
        )
    return out


def keep_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apply every patch above for the duration of one test."""
    monkeypatch.setattr(tracker_video, "apply_rotary_pos_emb_2d", apply_rope)
    monkeypatch.setattr(sam3_image, "apply_rotary_pos_emb_2d", apply_rope)
    monkeypatch.setattr(tracker_video.Sam3TrackerVideoVisionRotaryEmbedding, "forward", rope_tables)
    monkeypatch.setattr(TrackerVideo, "_process_object_pointers", object_pointers)
    monkeypatch.setattr(TrackerVideo, "_encode_new_memory", encode_new_memory)
    monkeypatch.setattr(TrackerVideo, "_run_single_frame_inference", single_frame_inference)
