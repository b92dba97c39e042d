"""Image predictor: images of any size + concepts -> `Detections` per (image, concept).

    predictor = ImagePredictor(model.detector, model.tokenizer)
    results = predictor.predict([frame_a, frame_b], [Concept("red car"), Concept(exemplars=(box,))])
    results[image][concept]  # Detections at that image's size

Pre-processing is the official one: each image is squashed (no letterbox) to the model's square
input with bilinear + antialias resampling, rounded to uint8 levels as torchvision's uint8 resize
does, and normalised with mean = std = 0.5. The image features are computed once per image and
shared by all its concepts; text features are cached per concept text (bounded LRU). Boxes and
masks come back at each image's own size (boxes are not clipped to it, as in the official
`Sam3Processor`); a detection is kept when its score (class probability x presence) is above the
concept's threshold, and detections are sorted best first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeGuard

import numpy as np
import torch
import torch.nn.functional as F

from model.backbone.tokenizer import Tokenizer
from model.backbone.vision_language import TextFeatures
from model.detector.detector import Detector, DetectorOutput
from model.detector.geometry import GeometryPrompt
from model.nn.box_ops import xyxy_to_cxcywh
from model.types import Concept, Detections

ImageLike = np.ndarray | torch.Tensor  # H x W x 3 uint8, RGB

EXEMPLAR_ONLY_TEXT = "visual"  # the official placeholder text of box-only prompts


class ImagePredictor:
    """Runs a `Detector` on raw images and maps its outputs back to every image's size."""

    def __init__(
        self,
        detector: Detector,
        tokenizer: Tokenizer,
        *,
        score_threshold: float = 0.5,
        text_cache_size: int = 64,
    ) -> None:
        self.detector = detector
        self.tokenizer = tokenizer
        self.score_threshold = score_threshold
        self.image_size = detector.config.vit.image_size
        self._text_cache: OrderedDict[str, TextFeatures] = OrderedDict()  # LRU, evicts the oldest
        self._text_cache_size = text_cache_size

    @property
    def _param(self) -> torch.Tensor:
        return next(self.detector.parameters())

    @torch.inference_mode()
    def predict(
        self, images: ImageLike | Sequence[ImageLike], concepts: Sequence[Concept]
    ) -> list[list[Detections]]:
        """Detect every concept in every image: result[i][k] is image i, concept k."""
        batch: list[ImageLike] = [images] if _is_single_image(images) else list(images)
        if not batch or not concepts:
            return [[] for _ in batch]
        sizes = [_image_size(image) for image in batch]  # (H, W) per image
        pixels = self.preprocess(batch)  # B x 3 x S x S
        features = self.detector.encode_image(pixels)

        num_concepts = len(concepts)
        image_index = torch.arange(len(batch), device=pixels.device).repeat_interleave(num_concepts)
        text = self._text_features([c.text or EXEMPLAR_ONLY_TEXT for c in concepts])  # K rows
        text = TextFeatures(
            text.tokens.repeat(len(batch), 1, 1), text.padding_mask.repeat(len(batch), 1)
        )
        geometry = self._geometry(concepts, sizes, pixels.device)  # B*K prompts
        prompt = self.detector.encode_prompt(features, text, geometry, image_index)
        output = self.detector.decode(features, prompt)

        results = []
        for i, size in enumerate(sizes):
            row = []
            for k, concept in enumerate(concepts):
                threshold = concept.thresholds.detection
                row.append(self._postprocess(output, i * num_concepts + k, size, threshold))
            results.append(row)
        return results

    def preprocess(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """H x W x 3 uint8 images -> B x 3 x S x S, squashed to S and normalised to [-1, 1]."""
        size = self.image_size
        param = self._param
        out = torch.empty(len(images), 3, size, size, device=param.device, dtype=param.dtype)
        for i, image in enumerate(images):
            pixels = (
                torch.as_tensor(image).to(param.device).permute(2, 0, 1)[None].float()
            )  # 1 x 3 x H x W
            pixels = F.interpolate(
                pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            pixels = pixels.round().clamp(0, 255)  # torchvision resizes uint8 to uint8
            out[i] = ((pixels / 255 - 0.5) / 0.5)[0].to(param.dtype)
        return out

    def _text_features(self, texts: list[str]) -> TextFeatures:
        """K texts -> K x L x C features; each distinct text is encoded once and cached."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            tokens = self.tokenizer(missing)
            device = self._param.device
            encoded = self.detector.encode_text(
                tokens.ids.to(device), tokens.padding_mask.to(device)
            )
            for j, text in enumerate(missing):
                self._text_cache[text] = TextFeatures(
                    encoded.tokens[j : j + 1], encoded.padding_mask[j : j + 1]
                )
        for text in texts:
            self._text_cache.move_to_end(text)
        rows = [self._text_cache[t] for t in texts]
        while len(self._text_cache) > self._text_cache_size:
            self._text_cache.popitem(last=False)
        return TextFeatures(
            torch.cat([r.tokens for r in rows]), torch.cat([r.padding_mask for r in rows])
        )

    def _geometry(
        self, concepts: Sequence[Concept], sizes: list[tuple[int, int]], device: torch.device
    ) -> GeometryPrompt | None:
        """Exemplar boxes of every (image, concept) pair, normalised by that image's size."""
        if not any(c.exemplars for c in concepts):
            return None
        boxes, labels = [], []
        for height, width in sizes:
            scale = torch.tensor([width, height, width, height], dtype=torch.float32)
            for concept in concepts:
                xyxy = torch.tensor([b.xyxy for b in concept.exemplars], dtype=torch.float32).view(
                    -1, 4
                )
                boxes.append(xyxy_to_cxcywh(xyxy / scale))
                labels.append(
                    torch.tensor([b.positive for b in concept.exemplars], dtype=torch.bool)
                )
        return GeometryPrompt.from_boxes(boxes, labels, device=device)

    def _postprocess(
        self, output: DetectorOutput, row: int, size: tuple[int, int], threshold: float | None
    ) -> Detections:
        """Keep prompt `row`'s detections above the threshold, best first, at the image's size."""
        height, width = size
        scores = output.scores[row]  # Q
        keep = torch.nonzero(
            scores > (self.score_threshold if threshold is None else threshold)
        ).squeeze(1)
        keep = keep[scores[keep].argsort(descending=True)]
        scale = scores.new_tensor([width, height, width, height])
        boxes = output.boxes_xyxy[row, keep].float() * scale  # N x 4 pixels
        mask_logits = output.mask_logits[row, keep]  # N x h x w
        if len(keep):  # official: bilinear on the logits, then sigmoid > 0.5, i.e. logit > 0
            logits = F.interpolate(
                mask_logits[None].float(),
                size=(height, width),
                mode="bilinear",
                align_corners=False,
            )
            masks = (logits[0] > 0).cpu()  # N x H x W
        else:
            masks = torch.zeros(0, height, width, dtype=torch.bool)
        return Detections(
            scores=scores[keep].float(),
            boxes=boxes,
            masks=masks,
            mask_logits=mask_logits,
            presence=float(output.presence[row]),
        )


def _is_single_image(images: object) -> TypeGuard[ImageLike]:
    return isinstance(images, np.ndarray | torch.Tensor) and images.ndim == 3


def _image_size(image: ImageLike) -> tuple[int, int]:
    """Validate an H x W x 3 uint8 image and return (H, W)."""
    if not isinstance(image, np.ndarray | torch.Tensor):
        raise TypeError(f"expected an H x W x 3 uint8 array or tensor, got {type(image).__name__}")
    dtype_ok = (
        image.dtype == np.uint8 if isinstance(image, np.ndarray) else image.dtype == torch.uint8
    )
    if image.ndim != 3 or image.shape[2] != 3 or not dtype_ok:
        raise ValueError(
            f"expected an H x W x 3 uint8 RGB image, got shape {tuple(image.shape)} {image.dtype}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {tuple(image.shape)}")
    return int(image.shape[0]), int(image.shape[1])
