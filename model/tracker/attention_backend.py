"""The kernel behind the memory cross-attention, chosen explicitly (`TrackerConfig.memory_attention_backend`).

The cross-attention is the tracker's one big computation (5184 queries x ~36k keys per object
and layer at full size; docs/tracker.md "Cost"), and PyTorch's automatic choice is not always
the fastest for its single 256-wide head, especially with a padding mask. Names:

    "auto"       F.scaled_dot_product_attention picks (default: always runs, on every device)
    "math"       the written-out softmax(QK^T / sqrt(d) + mask) V (reference, any device)
    "flash"      SDPBackend.FLASH_ATTENTION  (no additive mask: only without padding)
    "efficient"  SDPBackend.EFFICIENT_ATTENTION
    "cudnn"      SDPBackend.CUDNN_ATTENTION  (CUDA only)
    "sdpa_math"  SDPBackend.MATH (PyTorch's own math kernel)

A named SDPA kernel that cannot run the call raises PyTorch's "No available kernel" error
instead of silently falling back: the choice is meant to be measured, not guessed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

_SDPA_BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa_math": SDPBackend.MATH,
}
BACKENDS = ("auto", "math", *_SDPA_BACKENDS)


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(
            f"memory attention backend {backend!r} is not one of {', '.join(BACKENDS)}"
        )


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None,
    backend: str = "auto",
) -> torch.Tensor:
    """q (B, H, Lq, D), k and v (B, H, Lk, D), mask additive (B, 1, 1, Lk) or None -> (B, H, Lq, D)."""
    if backend == "auto":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if backend == "math":
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # B x H x Lq x Lk
        if mask is not None:
            scores = scores + mask
        return scores.softmax(dim=-1) @ v
    with sdpa_kernel([_SDPA_BACKENDS[backend]]):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
