"""Device-independent counts of one frame, by stage: aten ops, host syncs, matmul / conv FLOPs.

`OpCounter.frame()` counts everything PyTorch dispatches while it is open (a TorchDispatchMode),
attributed to the stage named by the innermost `stage(name)` (the bench's `ExactScene` names
every network call; the rest of the loop is "loop"):

* ops: aten ops after PyTorch's own decompositions, what eager mode launches one by one on a
  GPU (views are counted apart: they launch no kernel);
* FLOPs: `torch.utils.flop_counter`'s formulas for every matmul, convolution and attention op,
  plus CPU's fused attention; `attention` is the part in attention ops;
* syncs: ops after which the host must wait for the device: reading a value
  (`_local_scalar_dense`: `item`, `bool`, `float`, `int`), ops whose output size depends on
  values (`nonzero`, `masked_select`, `unique`, boolean indexing), and device-to-host copies.
  On a CPU run host and device are one, so a device-to-host copy (`.cpu()`, `.tolist()`)
  dispatches nothing: those two Tensor methods are wrapped and count as one sync each. Blocking
  host-to-device copies cannot be seen on a CPU run; on CUDA they are counted from the copy ops.

With `meta_values=True` the counter also lets code run on the meta device (no data), where the
value-dependent ops above have no answer: it answers as the steady state would (every mask
entry set, every flag false). bench/meta_counts.py uses that for full-size counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

READS = {aten._local_scalar_dense}
VALUE_SHAPED = {
    aten.nonzero,
    aten.masked_select,
    aten._unique,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.unique_dim_consecutive,
    aten.repeat_interleave,
    aten.equal,
}
BOOL_INDEXED = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}
COPIES = {aten._to_copy, aten.copy_}
ATTENTION = {
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_cudnn_attention,
}


def _attention_flops(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> int:
    """QK^T and AV of a fused attention: 2 Lq Lk (E + Ev) per batch and head."""
    rows = query.numel() // query.shape[-1]  # batch x heads x Lq
    return 2 * rows * key.shape[-2] * (query.shape[-1] + value.shape[-1])


def _cpu_attention_flops(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *_: Any, **__: Any
) -> int:
    return _attention_flops(query, key, value)


FLOPS: dict[Any, Callable[..., int]] = {
    **FlopCounterMode(display=False).flop_registry,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
}


@dataclass
class Counts:
    """One stage's counts over one frame."""

    ops: int = 0  # aten ops that are not views (~ kernel launches in eager mode)
    views: int = 0
    syncs: int = 0
    flops: int = 0
    attention_flops: int = 0
    sync_kinds: Counter[str] = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        self.ops += other.ops
        self.views += other.views
        self.syncs += other.syncs
        self.flops += other.flops
        self.attention_flops += other.attention_flops
        self.sync_kinds.update(other.sync_kinds)


FrameCounts = dict[str, Counts]  # stage -> counts


def total(frame: FrameCounts) -> Counts:
    out = Counts()
    for counts in frame.values():
        out.add(counts)
    return out


class OpCounter(TorchDispatchMode):
    """Counts per stage while `frame()` is open; `stage(name)` and `uncounted()` nest inside."""

    def __init__(self, *, meta_values: bool = False) -> None:
        super().__init__()
        self.meta_values = meta_values
        self._stages: list[str] = ["loop"]
        self._paused = 0
        self._record: FrameCounts | None = None

    @contextmanager
    def frame(self) -> Iterator[FrameCounts]:
        record: FrameCounts = {}
        self._record = record
        try:
            with self, _host_reads(self):
                yield record
        finally:
            self._record = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._stages.append(name)
        try:
            yield
        finally:
            self._stages.pop()

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def _counts(self) -> Counts | None:
        if self._record is None or self._paused:
            return None
        return self._record.setdefault(self._stages[-1], Counts())

    def count_sync(self, kind: str) -> None:
        counts = self._counts()
        if counts is not None:
            counts.syncs += 1
            counts.sync_kinds[kind] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if (
            self.meta_values
            and func is aten.scaled_dot_product_attention.default
            and _on_meta(args)
        ):
            return self._fused_attention(*args, **kwargs)  # meta would pick the unfused math
        # Under inference_mode composite ops (linear, matmul, item, attention) arrive whole:
        # count what they run, as eager mode outside inference_mode dispatches it.
        with self:
            decomposed = func.decompose(*args, **kwargs)
        if decomposed is not NotImplemented:
            return decomposed
        counts = self._counts()
        packet = func._overloadpacket
        if counts is not None:
            if func.is_view:
                counts.views += 1
            else:
                counts.ops += 1
            kind = _sync_kind(packet, args, kwargs)
            if kind is not None:
                counts.syncs += 1
                counts.sync_kinds[kind] += 1
        if self.meta_values and _on_meta(args):
            out = _meta_answer(func, packet, args, kwargs)
        else:
            out = func(*args, **kwargs)
        if counts is not None and packet in FLOPS:
            flops = int(FLOPS[packet](*args, **kwargs, out_val=out))
            counts.flops += flops
            if packet in ATTENTION:
                counts.attention_flops += flops
        return out

    def _fused_attention(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *_: Any, **__: Any
    ) -> torch.Tensor:
        """One fused attention kernel, as a GPU (and this CPU) runs it."""
        counts = self._counts()
        if counts is not None:
            flops = _attention_flops(query, key, value)
            counts.ops += 1
            counts.flops += flops
            counts.attention_flops += flops
        return query.new_empty((*query.shape[:-1], value.shape[-1]))


def _sync_kind(packet: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    name = packet.__name__
    if packet in READS or packet in VALUE_SHAPED:
        return name
    if packet in BOOL_INDEXED:
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ()):
            return f"{name} (bool mask)"
    if packet in COPIES:
        src = args[1] if packet is aten.copy_ else args[0]
        if packet is aten.copy_:
            dst_device = args[0].device
        else:
            dst_device = kwargs.get("device") or src.device
        dst_device = torch.device(dst_device)
        if src.device.type != "cpu" and dst_device.type == "cpu":
            return "device-to-host copy"
        if src.device.type == "cpu" and dst_device.type != "cpu":  # meta stands for a GPU
            blocking = not kwargs.get("non_blocking", False) or not src.is_pinned()
            return "host-to-device copy (blocking)" if blocking else None
    return None


# --- CPU runs: device-to-host reads that dispatch nothing ------------------------------------


@contextmanager
def _host_reads(counter: OpCounter) -> Iterator[None]:
    """Wrap `Tensor.tolist` / `Tensor.cpu`: each is a device-to-host copy on a GPU."""
    originals = {name: getattr(torch.Tensor, name) for name in ("tolist", "cpu")}

    def wrap(name: str) -> Callable[..., Any]:
        original = originals[name]

        def read(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self.device.type in ("cpu", "meta"):  # on CUDA the copy op itself is counted
                counter.count_sync(f"{name}()")
            if self.device.type == "meta" and counter.meta_values:
                zeros = torch.zeros(self.shape, dtype=self.dtype)
                return zeros.tolist() if name == "tolist" else zeros
            return original(self, *args, **kwargs)

        return read

    for name in originals:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


# --- meta device: answers for value-dependent ops ----------------------------------------------


def _on_meta(args: tuple[Any, ...]) -> bool:
    return any(isinstance(a, torch.Tensor) and a.device.type == "meta" for a in _flat(args))


def _flat(args: Any) -> Iterator[Any]:
    for a in args:
        if isinstance(a, list | tuple):
            yield from _flat(a)
        else:
            yield a


def _meta_answer(func: Any, packet: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The steady state's answer where a meta tensor has none: every flag False, every mask
    entry set (so `nonzero` lists every position), unique values all distinct."""
    x = args[0] if args else None
    if packet is aten._local_scalar_dense:
        assert isinstance(x, torch.Tensor)
        return False if x.dtype == torch.bool else (0.0 if x.is_floating_point() else 0)
    if packet is aten.nonzero:
        assert isinstance(x, torch.Tensor)
        return torch.empty((x.numel(), x.dim()), dtype=torch.long, device="meta")
    if packet is aten.masked_select:
        assert isinstance(x, torch.Tensor)
        return torch.empty(x.numel(), dtype=x.dtype, device="meta")
    if packet is aten.equal:
        return True
    if packet in BOOL_INDEXED:
        indices = list(args[1])
        expanded: list[torch.Tensor | None] = []
        for i in indices:
            if isinstance(i, torch.Tensor) and i.dtype == torch.bool:
                expanded += [torch.zeros(i.numel(), dtype=torch.long, device="meta")] * i.dim()
            else:
                expanded.append(i)
        return func(args[0], expanded, *args[2:], **kwargs)
    return func(*args, **kwargs)
