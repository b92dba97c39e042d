"""Graph breaks under torch.compile of the detector pass and the tracker step (tiny config, CPU).

    python -m bench.graph_breaks [--config tiny] [--objects 4]

`torch._dynamo.explain` traces each call as `torch.compile` would and reports the graphs it
splits into and why. Breaks come from the code, not the sizes, so the tiny config answers for
every size. The calls are the ones a steady frame makes: `Sam3FrameModel.detect` with one cached
concept, and `Tracker.track_step` for N objects with full memories (S = 10, P = 18).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from model.build import build_sam3
from model.tracker.memory_bank import MemoryBatch
from model.types import Concept
from model.video.sam3_frame_model import Sam3FrameModel, _frame


def explain(fn: Callable[[], object]) -> tuple[int, int, list[str]]:
    """(graphs, breaks, reasons) of `fn` under dynamo."""
    torch._dynamo.reset()
    out = torch._dynamo.explain(fn)()
    reasons = sorted({str(b.reason).splitlines()[0][:140] for b in out.break_reasons})
    return out.graph_count, out.graph_break_count, reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--objects", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    frame_model = Sam3FrameModel(build_sam3(args.config))
    cfg = frame_model.model.config.tracker
    g, n, s, p = cfg.grid_size, args.objects, 10, 18
    with torch.inference_mode():
        (features,) = frame_model.encode_images([np.zeros((96, 128, 3), dtype=np.uint8)])
        concept = frame_model.encode_concept(Concept(text="object"))
        memory = MemoryBatch(
            torch.randn(n, s, cfg.mem_dim, g, g).to(torch.bfloat16),
            torch.arange(s).repeat(n, 1),
            torch.ones(n, s, dtype=torch.bool),
            torch.randn(n, p, cfg.d_model),
            torch.ones(n, p),
            torch.ones(n, p, dtype=torch.bool),
        )
        tracker = frame_model.model.tracker
        targets = {
            "detector (Sam3FrameModel.detect)": lambda: frame_model.detect(features, [concept]),
            "tracker step (Tracker.track_step)": lambda: tracker.track_step(
                _frame(features).tracker, memory
            ),
        }
        print(f"# graph breaks, config {args.config}, torch {torch.__version__}")
        print("| target | graphs | breaks | reasons |")
        print("|---|---:|---:|---|")
        for name, fn in targets.items():
            graphs, breaks, reasons = explain(fn)
            print(f"| {name} | {graphs} | {breaks} | {'; '.join(reasons)} |", flush=True)


if __name__ == "__main__":
    main()
