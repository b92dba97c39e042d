"""`--sdpa` for the benchmarks: restrict `F.scaled_dot_product_attention` to chosen backends.

PyTorch picks a backend per call; on an H100 it often picks cuDNN, whose per-call planning cost
lands on the CPU. The option times the alternatives without touching the model code.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sdpa",
        nargs="+",
        choices=sorted(BACKENDS),
        help="attention backends allowed, in order of preference (default: PyTorch's choice)",
    )


def restrict(names: Sequence[str] | None) -> None:
    """Allow only `names` (in that order of priority) for the rest of the process."""
    if names:
        sdpa_kernel([BACKENDS[n] for n in names], set_priority=True).__enter__()
