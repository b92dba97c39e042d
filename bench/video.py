"""The video loop per frame with exactly N objects in steady state, and its device-free counts.

    python -m bench.video --config tiny --objects 1 4                    # CPU, timed
    python -m bench.video --config sam3 --device cuda --dtype bfloat16   # GPU, timed
    python -m bench.video --counts --config sam3 embedded                # device-independent

Timed runs: the real `VideoTracker` on an `ExactScene` (bench/scene.py: every network runs,
the scene decides the values, so exactly N objects live on every frame, asserted), stepped
until every memory bank is at its caps (bench/steady.py); only those steady frames are timed,
the device synchronised around each step. Prints ms per frame (median), the loop's own
per-stage ms (host clocks; `--stage-sync` synchronises the device around every network call
so they become device times, at the cost of the detector / tracker overlap) and the
re-conditioning frame apart. `--streams K`: K streams through `VideoTracker.step_many`, one
backbone batch; prints aggregate fps.

`--counts`: per steady frame and stage, TFLOP (counted) against the analytic minimum
(bench/analytic.py), aten ops (non-view, ~ kernel launches in eager mode) and host syncs
(bench/counting.py). Configs too big to run here (`sam3`) count their network calls on the
meta device (bench/meta_counts.py) and take the loop's own ops and syncs from a real `tiny` run
(the same loop code, caps and thresholds). Graph breaks: bench/graph_breaks.py.
"""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import replace

import torch

from bench import sdpa
from bench.analytic import memory_attention_flops, vit_flops
from bench.counting import Counts, FrameCounts, OpCounter, total
from bench.meta_counts import NETWORK_STAGES, meta_model, network_counts
from bench.scene import ExactScene
from bench.steady import SteadyRun, random_frames, run_steady
from model.build import build_sam3
from model.config import CONFIGS, Sam3Config
from model.video.sam3_frame_model import Sam3FrameModel
from model.video.video_tracker import VideoTracker

OBJECTS = (1, 4, 10, 16, 32)


class TooMany(ValueError):
    """More objects than the detector has queries (the embedded model has 24)."""


RUNNABLE_ON_CPU = ("tiny", "embedded")  # counted by running; others on the meta device


def steady_run(
    config: str | Sam3Config,
    n: int,
    frames: int,
    device: torch.device,
    dtype: torch.dtype,
    *,
    streams: int = 1,
    counter: OpCounter | None = None,
    stage_sync: bool = False,
) -> SteadyRun:
    torch.manual_seed(0)
    model = build_sam3(config, device=device, dtype=dtype)  # packaged weights, else random
    scene = ExactScene(Sam3FrameModel(model), n, counter)
    scene.sync_stages = stage_sync
    trackers = [VideoTracker(scene, model.config.video) for _ in range(streams)]
    return run_steady(scene, trackers, random_frames(720, 1280, 4), frames, counter=counter)


def counted(config: str, n: int, dtype: torch.dtype) -> tuple[FrameCounts, tuple[int, int, int]]:
    """Per-stage counts of one steady frame (module docstring), and its (N, S, P)."""
    queries = CONFIGS[config].detector.num_queries
    if n > queries:
        raise TooMany(f"{config}'s detector has {queries} queries: it cannot report {n} objects")
    # the loop's own work: a real run of this config, or of tiny with as many detector queries
    tiny = CONFIGS["tiny"]
    loop_config: str | Sam3Config = (
        config
        if config in RUNNABLE_ON_CPU
        else replace(tiny, detector=replace(tiny.detector, num_queries=queries))
    )
    counter = OpCounter()
    cpu = torch.device("cpu")
    run = steady_run(loop_config, n, 1, cpu, torch.float32, counter=counter)
    frame = run.frames[0]
    assert frame.counts is not None
    if loop_config is config:
        return frame.counts, frame.memory
    _, s, p = frame.memory
    record = network_counts(meta_model(config, dtype), n, s, p)
    record["loop"] = frame.counts.get("loop", Counts())
    return record, frame.memory


def print_counts(configs: list[str], objects: list[int], dtype: torch.dtype) -> None:
    print(
        "| config | objects | S / P | TFLOP | analytic min | ViT | memory attention "
        "| backbone / detect / track / memory TFLOP | aten ops (views) | "
        "ops backbone / detect / track / memory / loop | syncs | syncs track / loop |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---|---:|---|---:|---|")
    for config in configs:
        cfg = CONFIGS[config]
        for n in objects:
            try:
                record, (_, s, p) = counted(config, n, dtype)
            except TooMany as why:
                print(f"| {config} | {n} | n/a: {why} |" + " |" * 9, flush=True)
                continue
            whole = total(record)
            vit = vit_flops(cfg)
            attention = n * memory_attention_flops(cfg, s, p)
            stages = [record.get(k, Counts()) for k in (*NETWORK_STAGES, "loop")]
            tflop = " / ".join(f"{c.flops / 1e12:.4g}" for c in stages[:4])
            ops = " / ".join(str(c.ops) for c in stages)
            sync = f"{record.get('track', Counts()).syncs} / {record.get('loop', Counts()).syncs}"
            print(
                f"| {config} | {n} | {s} / {p} | {whole.flops / 1e12:.4g} | "
                f"{(vit + attention) / 1e12:.4g} | {vit / 1e12:.4g} | {attention / 1e12:.4g} | "
                f"{tflop} | {whole.ops} ({whole.views}) | {ops} | {whole.syncs} | {sync} |",
                flush=True,
            )


def print_timed(args: argparse.Namespace, device: torch.device) -> None:
    dtype = getattr(torch, args.dtype)
    print("| config | objects | streams | S / P | warm-up | ms / frame | fps | stages ms | "
          "re-conditioning frame ms |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|---:|---|---:|")
    for config in args.config:
        for n in args.objects:
            run = steady_run(
                config, n, args.frames, device, dtype, streams=args.streams,
                stage_sync=args.stage_sync,
            )  # fmt: skip
            _, s, p = run.frames[0].memory
            ms = run.median_ms
            fps = 1e3 * args.streams / ms
            stages = " ".join(f"{k} {v:.1f}" for k, v in run.median_stages_ms().items())
            recond = "-" if run.recondition_ms is None else f"{run.recondition_ms:.1f}"
            print(
                f"| {config} | {n} | {args.streams} | {s} / {p} | {run.warmup_frames} | "
                f"{ms:.1f} | {fps:.1f} | {stages} | {recond} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", nargs="+", default=["tiny"])
    parser.add_argument("--objects", type=int, nargs="+", default=list(OBJECTS))
    parser.add_argument("--frames", type=int, default=8, help="steady frames timed")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--counts", action="store_true", help="device-independent counts")
    parser.add_argument("--stage-sync", action="store_true")
    sdpa.add_option(parser)
    args = parser.parse_args()
    sdpa.restrict(args.sdpa)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    what = "counts" if args.counts else f"device={device} ({name})"
    print(
        f"# bench/video.py  {what}  dtype={args.dtype}  threads={args.threads}  "
        f"torch={torch.__version__}  commit={commit}  sdpa={args.sdpa or 'default'}"
    )
    if args.counts:
        print_counts(args.config, args.objects, getattr(torch, args.dtype))
    else:
        print_timed(args, device)


if __name__ == "__main__":
    main()
