"""Bind the real detector to the evaluation loops: one image + phrases -> `Prediction`s."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from model.backbone.tokenizer import Tokenizer
from model.detector.detector import Detector
from model.embedded.eval.runner import Detect, Prediction


@torch.no_grad()
def predict(
    detector: Detector,
    tokenizer: Tokenizer,
    image_size: int,
    image: np.ndarray,
    texts: Sequence[str],
) -> list[Prediction]:
    """image (H, W, 3) uint8 RGB, P phrases -> P predictions at the image size.

    Scores are the SAM 3 joint probabilities sigmoid(logit) x presence; masks are the mask
    logits resized to the image and thresholded at 0.
    """
    h, w = image.shape[:2]
    param = next(detector.parameters())
    device = param.device
    side = image_size
    resized = image if (h, w) == (side, side) else cv2.resize(image, (side, side))
    x = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)[None].float()
    x = (x / 127.5 - 1.0).to(device, param.dtype)  # 1 x 3 x S x S
    tokens = tokenizer(list(texts))
    was_training = detector.training
    detector.eval()
    feats = detector.encode_image(x)
    text = detector.encode_text(tokens.ids.to(device), tokens.padding_mask.to(device))
    index = torch.zeros(len(texts), dtype=torch.int64, device=device)
    out = detector.decode(feats, detector.encode_prompt(feats, text, None, index))
    detector.train(was_training)
    masks = F.interpolate(out.mask_logits, size=(h, w), mode="bilinear", align_corners=False) > 0
    scores = out.scores
    return [
        Prediction(masks=masks[p].cpu().numpy(), scores=scores[p].float().cpu().numpy())
        for p in range(len(texts))
    ]


def detect_fn(detector: Detector, tokenizer: Tokenizer, image_size: int) -> Detect:
    def detect(image: np.ndarray, texts: Sequence[str]) -> list[Prediction]:
        return predict(detector, tokenizer, image_size, image, texts)

    return detect
