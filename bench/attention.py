"""Fused against unfused attention on this machine, at the shapes the models run.

    python -m bench.attention [--dtype bfloat16] [--threads 2]

For each shape it times PyTorch's fused kernel (`F.scaled_dot_product_attention`, flash
attention on CPU; what `model.nn.layers.attention` runs) and the plain softmax(QK^T / sqrt(d)) V
(`attention(..., fast=False)`), and prints their ratio with the error of each against a float64
reference. The ratio, not the milliseconds, is the result: both run in the same process on the
same inputs. In bfloat16 the plain formula rounds its scores to bfloat16 before the softmax,
hence its larger error (bench/RESULTS.md: why the model keeps the fused kernel).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from model.nn.layers import attention

# (name, batch, heads, queries, keys, head_dim): the embedded model at 128 x 128 with 5 or 6
# objects (`python -m bench.eval`'s live scene)
SHAPES = [
    ("embedded: tracker self-attention", 5, 1, 256, 256, 64),
    ("embedded: memory attention, 2 memories", 5, 1, 256, 544, 64),
    ("embedded: memory attention, 7 memories", 5, 1, 256, 1824, 64),
    ("embedded: memory attention, 6 objects, 10 memories", 6, 1, 256, 2596, 64),
    ("embedded: ViT global block", 1, 4, 256, 256, 32),
    ("embedded: decoder cross-attention", 1, 2, 25, 256, 32),
]


def _time(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def _compare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, repeats: int) -> str:
    """One table row: times, ratio and errors against float64."""
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    with torch.inference_mode():
        fused = _time(lambda: F.scaled_dot_product_attention(q, k, v), repeats)
        unfused = _time(lambda: attention(q, k, v, fast=False), repeats)
        err_f = (F.scaled_dot_product_attention(q, k, v).double() - exact).abs().max().item()
        err_u = (attention(q, k, v, fast=False).double() - exact).abs().max().item()
    return f"{fused:7.2f} {unfused:8.2f} {fused / unfused:6.2f} {err_f:7.4f} {err_u:7.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    generator = torch.Generator().manual_seed(0)
    print(f"{args.dtype}, {args.threads} threads; times in ms; err = max |out - float64|")
    header = f"{'fused':>7} {'unfused':>8} {'ratio':>6} {'err f':>7} {'err u':>7}"
    print(f"{'shape':<56} {header}")
    for name, b, h, lq, lk, d in SHAPES:
        q, k, v = (
            (torch.randn(b, h, n, d, generator=generator) * scale).to(dtype)
            for n, scale in ((lq, 1.5), (lk, 1.5), (lk, 1.0))
        )
        print(f"{name:<56} {_compare(q, k, v, args.repeats)}")


if __name__ == "__main__":
    main()
