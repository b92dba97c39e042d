"""ImagePredictor on the tiny detector: pre-processing, sizes, thresholds, batching, text cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.backbone.tokenizer import Tokenizer, train_bpe
from model.config import CONFIGS
from model.detector.detector import Detector
from model.detector.geometry import GeometryPrompt
from model.detector.predictor import ImagePredictor
from model.nn.box_ops import xyxy_to_cxcywh
from model.types import BoxPrompt, Concept, ConceptThresholds, Detections

TINY = CONFIGS["tiny"]
Q = TINY.detector.num_queries


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    model = Detector(TINY).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_bpe(
        (), 514, context_length=TINY.text.context_length
    )  # byte-level, fits vocab 1024


@pytest.fixture
def predictor(detector: Detector, tokenizer: Tokenizer) -> ImagePredictor:
    return ImagePredictor(detector, tokenizer, score_threshold=0.0)


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _assert_same(a: Detections, b: Detections) -> None:
    torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.boxes, b.boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(a.mask_logits, b.mask_logits, atol=1e-4, rtol=0)
    assert (a.masks != b.masks).float().mean() < 1e-3  # binarisation may flip a pixel at 0.5
    assert a.presence == pytest.approx(b.presence, abs=1e-5)


def test_outputs_are_at_each_image_size(predictor: ImagePredictor) -> None:
    images = [_image(90, 160, 0), torch.from_numpy(_image(200, 70, 1))]
    results = predictor.predict(images, [Concept("a red car")])
    for (height, width), (dets,) in zip([(90, 160), (200, 70)], results, strict=True):
        assert (
            len(dets) == Q
            and dets.masks.shape == (Q, height, width)
            and dets.masks.dtype == torch.bool
        )
        assert dets.mask_logits.shape == (Q, 4 * 8, 4 * 8)
        assert (
            dets.boxes[:, 2:] >= dets.boxes[:, :2]
        ).all()  # xyxy pixels (not clipped, as official)
        centres = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
        assert (centres >= 0).all() and (centres <= torch.tensor([width, height])).all()
        assert (dets.scores[:-1] >= dets.scores[1:]).all()  # best first
        assert 0.0 < dets.presence < 1.0


def test_thresholds_filter_detections(predictor: ImagePredictor) -> None:
    image = _image(64, 64, 2)
    (everything,) = predictor.predict(image, [Concept("cat")])
    cut = float(everything[0].scores.median())
    strict = Concept("cat", thresholds=ConceptThresholds(detection=cut))
    none = Concept("cat", thresholds=ConceptThresholds(detection=1.0))
    (row,) = predictor.predict(image, [strict, none])
    assert 0 < len(row[0]) < Q and (row[0].scores > cut).all()
    assert len(row[1]) == 0 and row[1].masks.shape == (0, 64, 64) and row[1].boxes.shape == (0, 4)


def test_batched_images_and_concepts_equal_one_at_a_time(predictor: ImagePredictor) -> None:
    images = [_image(80, 120, 3), _image(120, 80, 4)]
    box = BoxPrompt((10.0, 20.0, 60.0, 70.0))
    concepts = [
        Concept("dog"),
        Concept(exemplars=(box,)),
        Concept("cup", exemplars=(box, BoxPrompt((0, 0, 30, 30), positive=False))),
    ]
    together = predictor.predict(images, concepts)
    for i, image in enumerate(images):
        for k, concept in enumerate(concepts):
            (alone,) = predictor.predict([image], [concept])[0:1]
            _assert_same(together[i][k], alone[0])


def test_exemplar_boxes_are_normalised_by_the_image_size(
    predictor: ImagePredictor, detector: Detector
) -> None:
    image = _image(100, 200, 5)
    box = (20.0, 10.0, 120.0, 60.0)
    (dets,) = predictor.predict(image, [Concept("visual", exemplars=(BoxPrompt(box),))])[0]
    cxcywh = xyxy_to_cxcywh(torch.tensor([box]) / torch.tensor([200, 100, 200, 100]))
    geometry = GeometryPrompt.from_boxes([cxcywh], [torch.tensor([True])])
    tokens = predictor.tokenizer(["visual"])
    with torch.inference_mode():
        features = detector.encode_image(predictor.preprocess([image]))
        text = detector.encode_text(tokens.ids, tokens.padding_mask)
        out = detector.decode(features, detector.encode_prompt(features, text, geometry))
    torch.testing.assert_close(
        dets.scores, out.scores[0].sort(descending=True).values, atol=1e-5, rtol=0
    )


def test_preprocess_squashes_and_normalises(predictor: ImagePredictor) -> None:
    size = TINY.vit.image_size
    grey = np.full((37, 250, 3), 191, dtype=np.uint8)
    exact = _image(size, size, 6)
    pixels = predictor.preprocess([grey, exact])
    assert pixels.shape == (2, 3, size, size)
    torch.testing.assert_close(pixels[0], torch.full((3, size, size), (191 / 255 - 0.5) / 0.5))
    expected = (torch.from_numpy(exact).permute(2, 0, 1).float() / 255 - 0.5) / 0.5  # already S x S
    torch.testing.assert_close(pixels[1], expected)


def test_text_features_are_cached_and_bounded(detector: Detector, tokenizer: Tokenizer) -> None:
    predictor = ImagePredictor(detector, tokenizer, text_cache_size=2)
    calls: list[int] = []
    encode = detector.encode_text

    def counting(ids: torch.Tensor, padding: torch.Tensor | None = None):  # type: ignore[no-untyped-def]
        calls.append(ids.shape[0])
        return encode(ids, padding)

    detector.encode_text = counting  # type: ignore[method-assign]
    try:
        image = _image(50, 50, 7)
        predictor.predict(image, [Concept("dog"), Concept("dog"), Concept("cat")])
        predictor.predict(image, [Concept("cat")])
        predictor.predict(image, [Concept("bird")])
    finally:
        del detector.encode_text
    assert calls == [2, 1]  # "dog" + "cat" once, "cat" from the cache, then "bird"
    assert list(predictor._text_cache) == ["cat", "bird"]


def test_bad_images_are_rejected(predictor: ImagePredictor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((10, 10, 3), dtype=np.float32), [Concept("x")])
    with pytest.raises(ValueError, match="H x W x 3"):
        predictor.predict([np.zeros((10, 10), dtype=np.uint8)], [Concept("x")])
    with pytest.raises(TypeError, match="array or tensor"):
        predictor.predict(["not an image"], [Concept("x")])  # type: ignore[list-item]
    assert predictor.predict([_image(8, 8, 0)], []) == [[]]
