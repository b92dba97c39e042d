"""`Sam3`: the whole model as one module, with the official top-level key split.

`detector.*` is the image detector (backbone, geometry encoder, fusion encoder, decoder, heads);
`tracker.*` is the SAM 2-style memory tracker, which reads the backbone's tracker neck. The
tokenizer is plain Python state riding along, not part of the state dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from model.backbone.text import TextEncoder
from model.backbone.tokenizer import Tokenizer
from model.backbone.vit import ViT
from model.config import Sam3Config
from model.detector.detector import Detector
from model.tracker.tracker import Tracker

if TYPE_CHECKING:
    from model.checkpoint.strict import LoadReport


class Sam3(nn.Module):
    load_report: LoadReport | None  # set by `build_sam3`

    def __init__(
        self,
        config: Sam3Config,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        device = torch.device(device) if isinstance(device, str) else device
        self.config = config
        self.detector = Detector(config, device=device, dtype=dtype)
        self.tracker = Tracker(config.tracker, device=device, dtype=dtype)
        self.tokenizer: Tokenizer | None = None  # set by `build_sam3`

    # --- the two encoders benchmarks time on their own ---------------------------------------

    @property
    def vit(self) -> ViT:
        """The image trunk: images (B, 3, S, S) -> (B, C, S/14, S/14)."""
        return self.detector.backbone.vision_backbone.trunk

    @property
    def text_encoder(self) -> TextEncoder:
        """The language backbone: token ids (B, L) -> (B, L, d_model)."""
        return self.detector.backbone.language_backbone

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> (ids (N, L) int64, padding_mask (N, L) bool) on the model's device."""
        if self.tokenizer is None:
            raise RuntimeError("this Sam3 has no tokenizer; build it with build_sam3(...)")
        batch = self.tokenizer(texts)
        device = self.detector.backbone.vision_backbone.trunk.pos_embed.device
        return batch.ids.to(device), batch.padding_mask.to(device)
