"""Two independent parts of one frame's work side by side: on CUDA, on two streams.

The detector pass and the tracker's propagation of a frame read the same backbone features and
nothing of each other, so on a CUDA device the detector can run on a side stream while the
tracker runs on the current one. Everywhere else (CPU, MPS, ...) the two parts simply run one
after the other, `side` first: results and call order are those of plain sequential code.

Synchronisation (PyTorch's stream rules):
  * the side stream waits for the current stream before `side` starts, so the features the
    current stream produced (the backbone pass) are complete when the detector reads them;
  * the current stream waits for the side stream before `side_by_side` returns, so whatever the
    caller does next with the side's results (association) sees them complete;
  * every tensor in the side's result is `record_stream`-ed on the current stream: it was
    allocated on the side stream, and its memory must not go back to the side stream's pool
    (and be overwritten by the next frame's detector) before the current stream has read it.
Tensors allocated on the current stream that `side` reads (features, cached concept prompts)
outlive the call, and the current stream is ordered after `side` from then on, so they need no
record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

S = TypeVar("S")
M = TypeVar("M")


def side_by_side(
    device: torch.device, side: Callable[[], S], main: Callable[[], M], *, overlap: bool = True
) -> tuple[S, M]:
    """`(side(), main())`; on a CUDA device with `overlap`, `side` runs on a side stream while
    `main` runs on the current stream, both results ready for the current stream on return."""
    if device.type != "cuda" or not overlap:
        return side(), main()
    current = torch.cuda.current_stream(device)
    # from PyTorch's stream pool: creating is cheap
    stream = torch.cuda.Stream(device=device)  # type: ignore[no-untyped-call]  # untyped in torch
    stream.wait_stream(current)
    with torch.cuda.stream(stream):
        side_out = side()  # queued on the side stream; the host moves on at once
    main_out = main()
    current.wait_stream(stream)
    for tensor in _cuda_tensors(side_out):
        tensor.record_stream(current)
    return side_out, main_out


def _cuda_tensors(value: object) -> Iterator[torch.Tensor]:
    """The CUDA tensors in a result: a tensor, or tuples / lists (NamedTuples too) of them."""
    if isinstance(value, torch.Tensor):
        if value.device.type == "cuda":
            yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _cuda_tensors(item)
