"""Per-component latency of our detector, and of HF transformers' `Sam3Model` with the same weights
on the same inputs in the same run (the ratio is HF time / our time: > 1 means we are faster).

    python -m bench.model --config tiny                       # CPU float32, both models
    python -m bench.model --config sam3-heads                 # official heads at 1008 px, small trunk
    python -m bench.model --config sam3 --iters 2             # everything official size (slow on CPU)
    python -m bench.model --config sam3 --device cuda --dtype bfloat16 --no-hf   # GPU, full size

Components: `vit` (trunk), `vision` (trunk + neck), `text` (text encoder + resizer), `prompt`
(exemplar/geometry encoder), `fusion` (fusion encoder), `decoder` (DETR decoder), `heads`
(scoring + segmentation head), `total` (pixels and token ids to all outputs). One image with one
concept (a text plus one exemplar box, so both models run the exemplar encoder); `--concepts K`
times our one-call multi-concept path (exemplar encoding + decoding of K prompts on one image)
against K HF calls that reuse the vision features and the text features.
Each number is the fastest of `--iters` runs after `--warmup` runs (ours and HF alternate, with a
device synchronise around each call).
Run from the repository root (it reuses the parity test's HF config and weight loading).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import time
import types
from collections.abc import Callable
from dataclasses import replace

import torch

from bench import sdpa
from model.config import CONFIGS, Sam3Config
from model.detector.detector import Detector
from model.detector.geometry import GeometryPrompt

SMALL_TRUNK = {"width": 64, "depth": 2, "num_heads": 2, "mlp_dim": 128}
SMALL_TEXT = {
    "width": 64,
    "depth": 2,
    "num_heads": 2,
    "mlp_dim": 128,
    "vocab_size": 1024,
    "projection_dim": 64,
}


def bench_config(name: str) -> Sam3Config:
    """A registry config, or `sam3-heads`: official detector heads at 1008 px with a small ViT and
    text encoder (the heads' real cost without the 0.8 B-parameter encoders)."""
    if name == "sam3-heads":
        base = CONFIGS["sam3"]
        return replace(
            base,
            name="sam3-heads",
            vit=replace(base.vit, **SMALL_TRUNK),
            text=replace(base.text, **SMALL_TEXT),
        )
    if name not in CONFIGS:
        raise SystemExit(f"unknown config {name!r}; known: {sorted(CONFIGS)} and 'sam3-heads'")
    return CONFIGS[name]


def timed(
    fns: dict[str, Callable[[], object]], *, warmup: int, iters: int, device: torch.device
) -> dict[str, float]:
    """Milliseconds per call of each function: the minimum over `iters` rounds after `warmup` rounds.

    The functions alternate within every round, so a busy machine slows all of them alike; the
    minimum is the run least disturbed by other processes.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: min(times) for name, times in samples.items()}


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "model", "bench"], capture_output=True, text=True
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def inputs(
    cfg: Sam3Config, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, GeometryPrompt]:
    gen = torch.Generator().manual_seed(0)
    size = cfg.vit.image_size
    images = (torch.rand(1, 3, size, size, generator=gen) * 2 - 1).to(device, dtype)
    ids = torch.zeros(1, cfg.text.context_length, dtype=torch.long)
    ids[0, :5] = torch.randint(1, cfg.text.vocab_size, (5,), generator=gen)
    geometry = GeometryPrompt.from_boxes(
        [torch.tensor([[0.4, 0.5, 0.3, 0.4]])], [torch.tensor([True])], device=device
    )
    return images, ids.to(device), geometry


def our_components(
    det: Detector, images: torch.Tensor, ids: torch.Tensor, geometry: GeometryPrompt, concepts: int
) -> dict[str, Callable[[], object]]:
    """Closures over precomputed inputs, one per component."""
    image = det.encode_image(images)
    text = det.encode_text(ids)
    prompt = det.encode_prompt(image, text, geometry)
    coarse = image.detector_maps[-1]
    size = (coarse.shape[2], coarse.shape[3])
    tokens = coarse.flatten(2).transpose(1, 2)
    pos = image.detector_pos[-1][:1].flatten(2).transpose(1, 2)
    fused = det.transformer.encoder(
        tokens, pos, prompt.tokens, prompt.padding_mask, prompt.image_index
    )
    decoded = det.transformer.decoder(fused, pos, size, prompt.tokens, prompt.padding_mask)

    def heads() -> object:
        det.dot_prod_scoring(decoded.hidden[-1], prompt.tokens, prompt.padding_mask)
        return det.segmentation_head(
            fused,
            size,
            image.detector_maps[:-1],
            prompt.image_index,
            prompt.tokens,
            prompt.padding_mask,
            decoded.hidden[-1],
        )

    # K concepts on one image with cached text features: exemplar encoding + decoding, one call.
    many_text = type(text)(
        text.tokens.expand(concepts, -1, -1), text.padding_mask.expand(concepts, -1)
    )
    many_geometry = GeometryPrompt(
        *(t.expand(concepts, *t.shape[1:]) for t in vars(geometry).values())
    )
    same_image = torch.zeros(concepts, dtype=torch.long, device=images.device)

    def many() -> object:
        return det.decode(image, det.encode_prompt(image, many_text, many_geometry, same_image))

    return {
        "vit": lambda: det.backbone.vision_backbone.trunk(images),
        "vision": lambda: det.encode_image(images),
        "text": lambda: det.encode_text(ids),
        "prompt": lambda: det.encode_prompt(image, text, geometry),
        "fusion": lambda: det.transformer.encoder(
            tokens, pos, prompt.tokens, prompt.padding_mask, prompt.image_index
        ),
        "decoder": lambda: det.transformer.decoder(
            fused, pos, size, prompt.tokens, prompt.padding_mask
        ),
        "heads": heads,
        "total": lambda: det(images, ids, geometry),
        f"{concepts} concepts": many,
    }


def hf_components(
    hf: torch.nn.Module, images: torch.Tensor, ids: torch.Tensor, concepts: int
) -> dict[str, Callable[[], object]]:
    """The same stages through HF's sub-modules, fed exactly what `Sam3Model.forward` feeds them."""
    mask = (ids != 0).long()
    boxes = torch.tensor([[[0.4, 0.5, 0.3, 0.4]]], device=images.device, dtype=images.dtype)
    labels = torch.ones(1, 1, dtype=torch.long, device=images.device)
    vision = hf.get_vision_features(images)
    levels, level_pos = vision.fpn_hidden_states[:-1], vision.fpn_position_encoding[:-1]
    text = hf.get_text_features(input_ids=ids, attention_mask=mask).pooler_output

    def geometry() -> torch.Tensor:
        return hf.geometry_encoder(
            box_embeddings=boxes,
            box_mask=labels.bool(),
            box_labels=labels,
            img_feats=levels,
            img_pos_embeds=level_pos,
        )

    geo = geometry()
    prompt = torch.cat([text, geo.last_hidden_state], dim=1)
    prompt_mask = torch.cat([mask.bool(), geo.attention_mask], dim=1)

    def fusion():  # type: ignore[no-untyped-def]
        return hf.detr_encoder(
            vision_features=[levels[-1]],
            text_features=prompt,
            vision_pos_embeds=[level_pos[-1]],
            text_mask=prompt_mask,
        )

    encoded = fusion()

    def decoder():  # type: ignore[no-untyped-def]
        return hf.detr_decoder(
            vision_features=encoded.last_hidden_state,
            text_features=prompt,
            vision_pos_encoding=encoded.pos_embeds_flattened,
            text_mask=prompt_mask,
            spatial_shapes=encoded.spatial_shapes,
        )

    decoded = decoder()

    def heads() -> object:
        hf.dot_product_scoring(decoded.intermediate_hidden_states, prompt, prompt_mask)
        return hf.mask_decoder(
            decoder_queries=decoded.intermediate_hidden_states[-1],
            backbone_features=list(levels),
            encoder_hidden_states=encoded.last_hidden_state,
            prompt_features=prompt,
            prompt_mask=prompt_mask,
        )

    def total() -> object:
        return hf(
            pixel_values=images,
            input_ids=ids,
            attention_mask=mask,
            input_boxes=boxes,
            input_boxes_labels=labels,
        )

    text_out = hf.get_text_features(input_ids=ids, attention_mask=mask)

    def many() -> None:  # reused vision features and cached text features, one call per concept
        for _ in range(concepts):
            hf(
                vision_embeds=vision,
                text_embeds=text_out,
                attention_mask=mask,
                input_boxes=boxes,
                input_boxes_labels=labels,
            )

    return {
        "vit": lambda: hf.vision_encoder.backbone(images),
        "vision": lambda: hf.get_vision_features(images),
        "text": lambda: hf.get_text_features(input_ids=ids, attention_mask=mask),
        "prompt": geometry,
        "fusion": fusion,
        "decoder": decoder,
        "heads": heads,
        "total": total,
        f"{concepts} concepts": many,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default="tiny", help="tiny | sam3 | sam3-heads | any CONFIGS name"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument(
        "--concepts", type=int, default=4, help="concepts on one image for the multi-concept row"
    )
    parser.add_argument(
        "--no-hf", action="store_true", help="time ours only (e.g. full size on a GPU)"
    )
    sdpa.add_option(parser)
    args = parser.parse_args()
    sdpa.restrict(args.sdpa)

    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cfg = bench_config(args.config)
    cfg = replace(cfg, neck=replace(cfg.neck, tracker_neck=False))  # the detector never runs it
    print(
        f"config={cfg.name} device={device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f" dtype={args.dtype} threads={torch.get_num_threads()} torch={torch.__version__} commit={commit()}"
        + f" sdpa={args.sdpa or 'default'}"
    )

    if args.no_hf:
        torch.manual_seed(0)
        ours, hf = Detector(cfg, device=device, dtype=dtype).eval(), None
    else:
        from tests.model.detector.test_parity_detector import _hf_roi_align, build_pair

        modeling = importlib.import_module("transformers.models.sam3.modeling_sam3")
        if not hasattr(modeling, "torchvision"):  # box prompts need roi_align; serve ours
            modeling.torchvision = types.SimpleNamespace(
                ops=types.SimpleNamespace(roi_align=_hf_roi_align)
            )
        ours, hf = build_pair(cfg)
        hf = hf.to(device, dtype)
        ours._apply(
            lambda t: t.to(device, dtype) if t.is_floating_point() else t.to(device)
        )  # keep RoPE complex
        print(f"HF attention: {hf.config._attn_implementation}")
    images, ids, geometry = inputs(cfg, device, dtype)

    with torch.inference_mode():
        rows = {"ours": our_components(ours, images, ids, geometry, args.concepts)}
        if hf is not None:
            rows["hf"] = hf_components(hf, images, ids, args.concepts)
        print(
            f"{'component':<12} {'ours ms':>10}"
            + (f" {'hf ms':>10} {'hf/ours':>8}" if hf is not None else "")
        )
        for name in rows["ours"]:
            ms = timed(
                {who: fns[name] for who, fns in rows.items()},
                warmup=args.warmup,
                iters=args.iters,
                device=device,
            )
            line = f"{name:<12} {ms['ours']:>10.2f}"
            if "hf" in ms:
                line += f" {ms['hf']:>10.2f} {ms['hf'] / ms['ours']:>7.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
