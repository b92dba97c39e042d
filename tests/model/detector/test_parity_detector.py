"""Detector parity with HF transformers' `Sam3Model` (marker `parity`, extra `parity`).

Identical random weights (HF's init plus noise, so no head is trivially zero) are loaded into both
models through the checkpoint's pure HF -> official remap; the same images and token ids then must
give the same scores, boxes, masks and presence within 1e-4 in float32. Text-only prompts are given
to HF with one padded dummy box, which reproduces the official behaviour of always appending the
exemplar encoder's cls token (reference sam3-references.md §1.6a).

This machine's torch has no torchvision wheel, so HF's `torchvision.ops.roi_align` call is served
by our `roi_align`; that function is checked against a transcription of torchvision's C++ loop
in test_detector_geometry.py.
"""

from __future__ import annotations

import importlib
import types
from dataclasses import replace

import pytest
import torch
import transformers
from transformers.modeling_outputs import BaseModelOutputWithPooling

from model.checkpoint.hf import remap_hf
from model.config import CONFIGS, Sam3Config
from model.detector.detector import Detector, DetectorOutput
from model.detector.geometry import GeometryPrompt, roi_align
from model.nn.box_ops import cxcywh_to_xyxy

pytestmark = pytest.mark.parity

# The real module (`from transformers.models.sam3 import ...` yields a placeholder without torchvision).
modeling_sam3 = importlib.import_module("transformers.models.sam3.modeling_sam3")

ATOL = 1e-4


def hf_config(cfg: Sam3Config) -> transformers.Sam3Config:
    """The HF `Sam3Config` with the same architecture as our config."""
    vit, neck, text, det = cfg.vit, cfg.neck, cfg.text, cfg.detector
    grid = vit.image_size // vit.patch_size
    heads = {
        "hidden_size": det.d_model,
        "num_attention_heads": det.num_heads,
        "intermediate_size": det.ffn_dim,
    }
    return transformers.Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                "hidden_size": vit.width,
                "intermediate_size": vit.mlp_dim,
                "num_hidden_layers": vit.depth,
                "num_attention_heads": vit.num_heads,
                "image_size": vit.image_size,
                "patch_size": vit.patch_size,
                "window_size": vit.window_size,
                "global_attn_indexes": list(vit.global_blocks),
                "pretrain_image_size": vit.pretrain_image_size,
                "layer_norm_eps": vit.layer_norm_eps,
            },
            "fpn_hidden_size": neck.d_model,
            "backbone_feature_sizes": [[4 * grid] * 2, [2 * grid] * 2, [grid] * 2],
        },
        text_config={
            "model_type": "clip_text_model",
            "vocab_size": text.vocab_size,
            "hidden_size": text.width,
            "intermediate_size": text.mlp_dim,
            "projection_dim": text.projection_dim,
            "num_hidden_layers": text.depth,
            "num_attention_heads": text.num_heads,
            "max_position_embeddings": text.context_length,
            "layer_norm_eps": text.layer_norm_eps,
            "hidden_act": "gelu",  # CLIP's default is quick_gelu; SAM 3 uses exact GELU
            "bos_token_id": text.vocab_size - 2,
            "eos_token_id": text.vocab_size - 1,
            "pad_token_id": 0,
        },
        geometry_encoder_config={**heads, "num_layers": det.geometry_layers},
        detr_encoder_config={**heads, "num_layers": det.fusion_layers},
        detr_decoder_config={
            **heads,
            "num_layers": det.decoder_layers,
            "num_queries": det.num_queries,
        },
        mask_decoder_config={
            "hidden_size": det.d_model,
            "num_attention_heads": det.num_heads,
            "num_upsampling_stages": det.upsampling_stages,
        },
    )


def _hf_roi_align(
    features: torch.Tensor, boxes: list[torch.Tensor], output_size: int
) -> torch.Tensor:
    """Stand-in for `torchvision.ops.roi_align(features, boxes_per_image, output_size)`."""
    index = torch.cat([torch.full((len(b),), i, dtype=torch.long) for i, b in enumerate(boxes)])
    return roi_align(features, torch.cat(boxes), index, output_size)


@pytest.fixture(autouse=True)
def _torchvision_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    shim = types.SimpleNamespace(ops=types.SimpleNamespace(roi_align=_hf_roi_align))
    monkeypatch.setattr(modeling_sam3, "torchvision", shim, raising=False)


def build_pair(cfg: Sam3Config, seed: int = 0) -> tuple[Detector, modeling_sam3.Sam3Model]:
    """HF model with noisy random weights, and our detector holding the same weights."""
    torch.manual_seed(seed)
    hf = modeling_sam3.Sam3Model(hf_config(cfg)).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
    state = {k.removeprefix("detector."): v for k, v in remap_hf(hf.state_dict()).items()}
    ours = Detector(cfg).eval()
    missing, unexpected = ours.load_state_dict(state, strict=False)
    # HF has no point-exemplar projections and recomputes the ViT RoPE tables.
    assert all(
        k.startswith("geometry_encoder.points_") or k.endswith("freqs_cis") for k in missing
    ), missing
    assert not unexpected, unexpected
    return ours, hf


def _inputs(cfg: Sam3Config, batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    size = cfg.vit.image_size
    images = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    ids = torch.randint(1, cfg.text.vocab_size, (batch, cfg.text.context_length), generator=gen)
    for row, length in enumerate(range(3, 3 + batch)):
        ids[row, length:] = 0  # different text lengths per row
    return images, ids


# Per image: (cxcywh boxes, positive?) — mixed signs and counts so padding is exercised.
_EXEMPLARS = [
    ([[0.5, 0.5, 0.4, 0.3], [0.2, 0.7, 0.1, 0.2]], [True, False]),
    ([[0.3, 0.4, 0.5, 0.6]], [True]),
]


def _hf_boxes(
    exemplars: list[tuple[list[list[float]], list[bool]]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """HF layout: boxes B x N x 4, labels B x N with -10 marking padding."""
    longest = max(len(b) for b, _ in exemplars)
    boxes = torch.zeros(len(exemplars), longest, 4)
    labels = torch.full((len(exemplars), longest), -10, dtype=torch.long)
    for i, (b, lab) in enumerate(exemplars):
        boxes[i, : len(b)] = torch.tensor(b)
        labels[i, : len(b)] = torch.tensor(lab, dtype=torch.long)
    return boxes, labels


def _ours_geometry(exemplars: list[tuple[list[list[float]], list[bool]]]) -> GeometryPrompt:
    return GeometryPrompt.from_boxes(
        [torch.tensor(b) for b, _ in exemplars], [torch.tensor(lab) for _, lab in exemplars]
    )


def _assert_same(ours: DetectorOutput, hf_out: modeling_sam3.Sam3ImageSegmentationOutput) -> None:
    torch.testing.assert_close(ours.logits, hf_out.pred_logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        ours.presence_logits, hf_out.presence_logits[:, 0], atol=ATOL, rtol=0
    )
    torch.testing.assert_close(
        ours.scores,
        hf_out.pred_logits.sigmoid() * hf_out.presence_logits.sigmoid(),
        atol=ATOL,
        rtol=0,
    )
    torch.testing.assert_close(ours.boxes_xyxy, hf_out.pred_boxes, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.mask_logits, hf_out.pred_masks, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.semantic_logits, hf_out.semantic_seg, atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def tiny() -> Sam3Config:
    cfg = CONFIGS["tiny"]
    return replace(cfg, neck=replace(cfg.neck, tracker_neck=False))  # Sam3Model has no tracker neck


@pytest.mark.parametrize("prompt_kind", ["text", "boxes"])
def test_detector_matches_hf_end_to_end(tiny: Sam3Config, prompt_kind: str) -> None:
    ours, hf = build_pair(tiny)
    images, ids = _inputs(tiny, batch=2)
    if prompt_kind == "text":
        exemplars = [([[0.5, 0.5, 0.1, 0.1]], [False])] * 2  # one dummy box per image, padded away
        hf_boxes, hf_labels = _hf_boxes(exemplars)
        hf_labels[:] = -10
        geometry = None
    else:
        hf_boxes, hf_labels = _hf_boxes(_EXEMPLARS)
        geometry = _ours_geometry(_EXEMPLARS)
    with torch.inference_mode():
        hf_out = hf(
            pixel_values=images,
            input_ids=ids,
            attention_mask=(ids != 0).long(),
            input_boxes=hf_boxes,
            input_boxes_labels=hf_labels,
        )
        out = ours(images, ids, geometry)
    assert out.logits.shape == (2, tiny.detector.num_queries)
    assert (hf_out.presence_logits.abs() < 10).all(), "HF clamps presence to +-10, ours does not"
    _assert_same(out, hf_out)


def test_heads_match_hf_on_identical_backbone_features(tiny: Sam3Config) -> None:
    """Our backbone's features fed to both sets of heads: isolates the heads from the backbone."""
    ours, hf = build_pair(tiny, seed=3)
    images, ids = _inputs(tiny, batch=2, seed=4)
    hf_boxes, hf_labels = _hf_boxes(_EXEMPLARS)
    with torch.inference_mode():
        image = ours.encode_image(images)
        text = ours.encode_text(ids)
        out = ours.decode(image, ours.encode_prompt(image, text, _ours_geometry(_EXEMPLARS)))
        dummy = image.detector_maps[-1][..., ::2, ::2]  # HF drops its 4th (scalped) level
        vision = modeling_sam3.Sam3VisionEncoderOutput(
            fpn_hidden_states=(*image.detector_maps, dummy),
            fpn_position_encoding=(*image.detector_pos, dummy),
        )
        hf_out = hf(
            vision_embeds=vision,
            text_embeds=BaseModelOutputWithPooling(pooler_output=text.tokens),
            attention_mask=(~text.padding_mask).long(),
            input_boxes=hf_boxes,
            input_boxes_labels=hf_labels,
        )
    _assert_same(out, hf_out)


def test_aux_outputs_match_hf_decoder_layers(tiny: Sam3Config) -> None:
    """Per-layer boxes and presence (deep supervision) equal HF's intermediate decoder outputs."""
    cfg = replace(tiny, detector=replace(tiny.detector, decoder_layers=3))
    ours, hf = build_pair(cfg, seed=5)
    images, ids = _inputs(cfg, batch=1)
    hf_boxes, hf_labels = _hf_boxes(_EXEMPLARS[1:])
    with torch.inference_mode():
        out = ours(images, ids, _ours_geometry(_EXEMPLARS[1:]), aux=True)
        hf_out = hf(
            pixel_values=images,
            input_ids=ids,
            attention_mask=(ids != 0).long(),
            input_boxes=hf_boxes,
            input_boxes_labels=hf_labels,
        )
    assert len(out.aux) == 2
    for layer, aux in enumerate(out.aux):
        # HF's reference_boxes[i + 1] is layer i's refined box.
        torch.testing.assert_close(
            cxcywh_to_xyxy(aux.boxes),
            cxcywh_to_xyxy(hf_out.decoder_reference_boxes[layer + 1]),
            atol=ATOL,
            rtol=0,
        )
    _assert_same(out, hf_out)
