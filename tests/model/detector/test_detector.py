"""Detector on the tiny config: module shapes, batch vs single, several concepts per image."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from model.config import CONFIGS, Sam3Config
from model.detector.decoder import DetrDecoder
from model.detector.detector import Detector, DetectorOutput
from model.detector.fusion import FusionEncoder
from model.detector.geometry import GeometryPrompt
from model.detector.heads import DotProductScoring, SegmentationHead

TINY = CONFIGS["tiny"]
C, Q, L = TINY.detector.d_model, TINY.detector.num_queries, TINY.text.context_length
GRID = TINY.vit.image_size // TINY.vit.patch_size  # 8: coarse level; masks at 4 x GRID


@pytest.fixture(scope="module")
def detector() -> Detector:
    """Random weights plus noise, so that no head (e.g. the zero-initialised box delta) is trivial."""
    torch.manual_seed(0)
    model = Detector(TINY).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def _inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, TINY.vit.image_size, TINY.vit.image_size, generator=gen) * 2 - 1
    ids = torch.randint(1, TINY.text.vocab_size, (batch, L), generator=gen)
    ids[:, 4:] = 0
    ids[1:, 6:] = 0
    return images, ids


def _boxes(count: int) -> GeometryPrompt:
    boxes = [torch.tensor([[0.3 + 0.1 * i, 0.5, 0.2, 0.3]] * (i + 1)) for i in range(count)]
    labels = [torch.tensor([True] + [False] * i) for i in range(count)]
    return GeometryPrompt.from_boxes(boxes, labels)


def _assert_rows_equal(batched: DetectorOutput, row: int, single: DetectorOutput) -> None:
    for name in ("logits", "presence_logits", "boxes", "mask_logits", "semantic_logits", "queries"):
        torch.testing.assert_close(
            getattr(batched, name)[row], getattr(single, name)[0], atol=1e-4, rtol=0
        )


def test_output_shapes_and_scores(detector: Detector) -> None:
    images, ids = _inputs(2)
    with torch.inference_mode():
        out = detector(images, ids)
    assert out.logits.shape == (2, Q) and out.presence_logits.shape == (2,)
    assert out.boxes.shape == (2, Q, 4) and out.boxes_xyxy.shape == (2, Q, 4)
    assert out.mask_logits.shape == (2, Q, 4 * GRID, 4 * GRID)
    assert out.semantic_logits.shape == (2, 1, 4 * GRID, 4 * GRID)
    assert out.queries.shape == (2, Q, C) and out.aux == ()
    assert torch.isfinite(out.mask_logits).all()
    assert ((out.boxes >= 0) & (out.boxes <= 1)).all()
    torch.testing.assert_close(
        out.scores, out.logits.sigmoid() * out.presence_logits.sigmoid()[:, None]
    )


def test_aux_outputs_cover_earlier_layers(detector: Detector) -> None:
    images, ids = _inputs(1)
    with torch.inference_mode():
        plain = detector(images, ids)
        out = detector(images, ids, aux=True)
    assert len(out.aux) == TINY.detector.decoder_layers - 1
    for layer in out.aux:
        assert (
            layer.logits.shape == (1, Q)
            and layer.boxes.shape == (1, Q, 4)
            and layer.presence_logits.shape == (1,)
        )
    torch.testing.assert_close(out.logits, plain.logits)
    assert not torch.allclose(out.aux[0].boxes, out.boxes)


def test_batch_equals_one_image_at_a_time(detector: Detector) -> None:
    images, ids = _inputs(2, seed=1)
    geometry = _boxes(2)
    with torch.inference_mode():
        batched = detector(images, ids, geometry)
        for row in range(2):
            one = GeometryPrompt.from_boxes(
                [geometry.boxes[row, ~geometry.box_padding[row]]],
                [geometry.box_labels[row, ~geometry.box_padding[row]]],
            )
            _assert_rows_equal(
                batched, row, detector(images[row : row + 1], ids[row : row + 1], one)
            )


def test_concepts_share_image_features_and_equal_one_at_a_time(detector: Detector) -> None:
    """Three concepts (text, text + exemplars, exemplar with another text) on one image in one call."""
    images, _ = _inputs(1, seed=2)
    _, ids = _inputs(3, seed=3)
    geometry = _boxes(3)
    geometry = replace(geometry, box_padding=geometry.box_padding.clone())
    geometry.box_padding[0] = True  # concept 0: text only
    with torch.inference_mode():
        image = detector.encode_image(images)  # computed once
        text = detector.encode_text(ids)
        prompt = detector.encode_prompt(image, text, geometry, torch.zeros(3, dtype=torch.long))
        together = detector.decode(image, prompt)
        for row in range(3):
            keep = ~geometry.box_padding[row]
            one = GeometryPrompt.from_boxes(
                [geometry.boxes[row, keep]], [geometry.box_labels[row, keep]]
            )
            single_text = detector.encode_text(ids[row : row + 1])
            alone = detector.decode(image, detector.encode_prompt(image, single_text, one))
            _assert_rows_equal(together, row, alone)
    assert not torch.allclose(together.logits[0], together.logits[1])


def test_prompts_over_several_images_pick_their_image(detector: Detector) -> None:
    images, ids = _inputs(2, seed=4)
    index = torch.tensor([1, 0, 1])
    with torch.inference_mode():
        image = detector.encode_image(images)
        text = detector.encode_text(ids[[0, 1, 0]])
        out = detector.decode(image, detector.encode_prompt(image, text, None, index))
        direct = detector(images[[1, 0]], ids[[0, 1]])
    _assert_rows_equal(out, 0, _row(direct, 0))
    _assert_rows_equal(out, 1, _row(direct, 1))
    torch.testing.assert_close(out.logits[2], out.logits[0])


def _row(out: DetectorOutput, row: int) -> DetectorOutput:
    pick = slice(row, row + 1)
    return replace(
        out,
        logits=out.logits[pick],
        presence_logits=out.presence_logits[pick],
        boxes=out.boxes[pick],
        mask_logits=out.mask_logits[pick],
        semantic_logits=out.semantic_logits[pick],
        queries=out.queries[pick],
    )


def test_bad_prompt_counts_raise(detector: Detector) -> None:
    images, ids = _inputs(2)
    with torch.inference_mode():
        image = detector.encode_image(images)
        with pytest.raises(ValueError, match="pass image_index"):
            detector.encode_prompt(image, detector.encode_text(ids[:1]))
        with pytest.raises(ValueError, match="geometry has 3 prompts"):
            detector.encode_prompt(image, detector.encode_text(ids), _boxes(3))


def test_mismatched_widths_are_rejected() -> None:
    bad: Sam3Config = replace(TINY, detector=replace(TINY.detector, d_model=64))
    with pytest.raises(ValueError, match="d_model"):
        Detector(bad, device=torch.device("meta"))


# --- modules on their own ---------------------------------------------------------------------


def test_fusion_encoder_shape_and_shared_first_layer() -> None:
    torch.manual_seed(0)
    encoder = FusionEncoder(C, 4, 64, 2).eval()
    image, pos = torch.randn(2, 20, C), torch.randn(1, 20, C)
    prompt, padding = (
        torch.randn(3, 5, C),
        torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 5]),
    )
    index = torch.tensor([0, 1, 1])
    with torch.inference_mode():
        fused = encoder(image, pos, prompt, padding, index)
        direct = encoder(image[index], pos, prompt, padding)
    assert fused.shape == (3, 20, C)
    torch.testing.assert_close(fused, direct, atol=1e-5, rtol=0)


def test_decoder_shapes_and_box_bias() -> None:
    torch.manual_seed(0)
    decoder = DetrDecoder(C, 4, 64, 3, Q).eval()
    memory, pos = torch.randn(2, 6 * 5, C), torch.randn(1, 6 * 5, C)
    prompt, padding = torch.randn(2, 7, C), torch.zeros(2, 7, dtype=torch.bool)
    with torch.inference_mode():
        out = decoder(memory, pos, (6, 5), prompt, padding)
        bias = decoder.box_bias(torch.rand(2, Q, 4), (6, 5))
    assert out.hidden.shape == (3, 2, Q, C) and out.boxes.shape == (3, 2, Q, 4)
    assert out.presence_logits.shape == (3, 2)
    assert bias.shape == (2, 4, 1 + Q, 30)
    assert (bias[:, :, 0] == 0).all() and bias[:, :, 1:].abs().sum() > 0  # presence row is neutral


def test_scoring_ignores_padded_prompt_tokens() -> None:
    torch.manual_seed(0)
    scoring = DotProductScoring(C, 64).eval()
    queries, prompt = torch.randn(2, 1, Q, C), torch.randn(1, 6, C)
    padding = torch.tensor([[False] * 4 + [True] * 2])
    with torch.inference_mode():
        logits = scoring(queries, prompt, padding)
        trimmed = scoring(queries, prompt[:, :4], padding[:, :4])
        changed = scoring(
            queries, torch.cat((prompt[:, :4], 100 * torch.randn(1, 2, C)), 1), padding
        )
    assert logits.shape == (2, 1, Q)
    torch.testing.assert_close(logits, trimmed)
    torch.testing.assert_close(logits, changed)
    assert logits.abs().max() <= 12.0


def test_segmentation_head_shapes_with_shared_skips() -> None:
    torch.manual_seed(0)
    head = SegmentationHead(C, 4, 3).eval()
    fused = torch.randn(3, 4 * 4, C)
    skips = (torch.randn(1, C, 16, 16), torch.randn(1, C, 8, 8))  # one image, three prompts
    prompt, padding = torch.randn(3, 5, C), torch.zeros(3, 5, dtype=torch.bool)
    with torch.inference_mode():
        masks, semantic = head(
            fused,
            (4, 4),
            skips,
            torch.zeros(3, dtype=torch.long),
            prompt,
            padding,
            torch.randn(3, Q, C),
        )
    assert masks.shape == (3, Q, 16, 16) and semantic.shape == (3, 1, 16, 16)


# --- reduced precision and devices ------------------------------------------------------------


def _converted(detector: Detector, device: str, dtype: torch.dtype) -> Detector:
    model = copy.deepcopy(detector)
    model._apply(
        lambda t: t.to(device, dtype) if t.is_floating_point() else t.to(device)
    )  # RoPE stays complex
    return model


def _points_and_boxes() -> GeometryPrompt:
    boxes = _boxes(1)
    points = torch.tensor([[[0.3, 0.6], [0.7, 0.2]]])
    flags = torch.tensor([[True, False]])
    return replace(boxes, points=points, point_labels=flags, point_padding=torch.zeros_like(flags))


def _assert_close_in_bf16(low: DetectorOutput, ref: DetectorOutput) -> None:
    assert torch.isfinite(low.mask_logits.float()).all()
    torch.testing.assert_close(low.scores.float().cpu(), ref.scores, atol=0.03, rtol=0)
    torch.testing.assert_close(low.boxes.float().cpu(), ref.boxes, atol=0.03, rtol=0)


def test_bfloat16_stays_close_to_float32(detector: Detector) -> None:
    """The CUDA path's dtype, checked on CPU: every op (ROI align, grid sample, SDPA) runs in bf16."""
    images, ids = _inputs(1, seed=5)
    low = _converted(detector, "cpu", torch.bfloat16)
    with torch.inference_mode():
        ref = detector(images, ids, _points_and_boxes())
        out = low(images.bfloat16(), ids, _points_and_boxes())
    assert out.mask_logits.dtype == torch.bfloat16
    _assert_close_in_bf16(out, ref)


@pytest.mark.gpu
def test_cuda_bfloat16_matches_cpu(detector: Detector) -> None:
    images, ids = _inputs(2, seed=6)
    gpu = _converted(detector, "cuda", torch.bfloat16)
    geometry = _boxes(2)
    on_gpu = GeometryPrompt(*(t.cuda() for t in vars(geometry).values()))
    with torch.inference_mode():
        ref = detector(images, ids, geometry)
        out = gpu(images.cuda().bfloat16(), ids.cuda(), on_gpu)
    _assert_close_in_bf16(out, ref)
