"""The SAM 3 image detector: backbone -> geometry encoder -> fusion encoder -> decoder -> heads.

Three calls so that each input is encoded once:

    image = detector.encode_image(images)                  # per frame (also feeds the tracker)
    text = detector.encode_text(token_ids)                 # per concept, cache it
    prompt = detector.encode_prompt(image, text, geometry, image_index)   # per (image, concept)
    out = detector.decode(image, prompt)                   # DetectorOutput, one row per prompt

Several concepts on one image are several prompt rows pointing at the same image row
(`image_index`); the image features are shared, not recomputed. `forward` chains the calls for one
prompt per image. Attribute names follow the official `detector.*` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from model.backbone.vision_language import Sam3Backbone, TextFeatures, VisionFeatures
from model.config import Sam3Config
from model.detector.decoder import DetrDecoder
from model.detector.fusion import FusionEncoder
from model.detector.geometry import GeometryEncoder, GeometryPrompt
from model.detector.heads import DotProductScoring, SegmentationHead
from model.nn.box_ops import cxcywh_to_xyxy
from model.nn.layers import Factory


class PromptFeatures(NamedTuple):
    """P prompts: tokens P x L x C (text tokens, then exemplar tokens), padding_mask P x L (True =
    padding), image_index (P,) int64 row of each prompt's image in the `VisionFeatures` batch."""

    tokens: torch.Tensor
    padding_mask: torch.Tensor
    image_index: torch.Tensor


@dataclass(frozen=True)
class LayerPrediction:
    """One decoder layer's predictions (for deep supervision): logits P x Q, boxes P x Q x 4
    cxcywh normalised, presence_logits (P,)."""

    logits: torch.Tensor
    boxes: torch.Tensor
    presence_logits: torch.Tensor


@dataclass(frozen=True)
class DetectorOutput:
    """Detector predictions for P prompts, Q queries, masks at H x W (288 x 288 at full size).

    logits: P x Q class logits; presence_logits: (P,); boxes: P x Q x 4 cxcywh normalised to the
    model input; mask_logits: P x Q x H x W; semantic_logits: P x 1 x H x W; queries: P x Q x C
    last-layer query embeddings; aux: the earlier decoder layers' predictions, first layer first
    (empty unless `decode(..., aux=True)`).
    """

    logits: torch.Tensor
    presence_logits: torch.Tensor
    boxes: torch.Tensor
    mask_logits: torch.Tensor
    semantic_logits: torch.Tensor
    queries: torch.Tensor
    aux: tuple[LayerPrediction, ...] = ()

    @property
    def presence(self) -> torch.Tensor:
        """(P,) probability that the concept is in the image at all."""
        return self.presence_logits.sigmoid()

    @property
    def scores(self) -> torch.Tensor:
        """P x Q detection probabilities: sigmoid(logit) x presence."""
        return self.logits.sigmoid() * self.presence[:, None]

    @property
    def boxes_xyxy(self) -> torch.Tensor:
        """P x Q x 4 xyxy normalised."""
        return cxcywh_to_xyxy(self.boxes)


class DetrTransformer(nn.Module):
    """Container that keeps the official key paths `transformer.encoder` / `transformer.decoder`."""

    def __init__(self, encoder: FusionEncoder, decoder: DetrDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder


class Detector(nn.Module):
    """Official `detector`: `backbone`, `geometry_encoder`, `transformer`, `dot_prod_scoring`,
    `segmentation_head`."""

    def __init__(
        self,
        config: Sam3Config,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        det = config.detector
        if det.d_model != config.neck.d_model:
            raise ValueError(
                f"detector d_model {det.d_model} != neck d_model {config.neck.d_model}"
            )
        factory = Factory(device=device, dtype=dtype)
        eps = det.layer_norm_eps
        self.config = config
        self.backbone = Sam3Backbone(config.vit, config.neck, config.text, **factory)
        self.geometry_encoder = GeometryEncoder(
            det.d_model,
            det.num_heads,
            det.ffn_dim,
            det.geometry_layers,
            roi_size=det.roi_size,
            eps=eps,
            **factory,
        )
        self.transformer = DetrTransformer(
            FusionEncoder(
                det.d_model, det.num_heads, det.ffn_dim, det.fusion_layers, eps=eps, **factory
            ),
            DetrDecoder(
                det.d_model,
                det.num_heads,
                det.ffn_dim,
                det.decoder_layers,
                det.num_queries,
                eps=eps,
                **factory,
            ),
        )
        self.dot_prod_scoring = DotProductScoring(
            det.d_model, det.ffn_dim, clamp=det.score_clamp, **factory
        )
        self.segmentation_head = SegmentationHead(
            det.d_model, det.num_heads, det.upsampling_stages, eps=eps, **factory
        )

    # --- the three encoders ---------------------------------------------------------------

    def encode_image(self, images: torch.Tensor, *, tracker: bool = False) -> VisionFeatures:
        """images: B x 3 x S x S normalised (mean = std = 0.5) -> multi-scale features.

        `tracker=True` also runs the tracker's FPN (`sam2_convs`) on the same trunk output.
        """
        return self.backbone.forward_image(images, detector=True, tracker=tracker)

    def encode_text(
        self, token_ids: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> TextFeatures:
        """token_ids: T x L int64 (id 0 = padding unless a mask is given) -> T x L x C tokens."""
        return self.backbone.forward_text(token_ids, padding_mask)

    def encode_prompt(
        self,
        image: VisionFeatures,
        text: TextFeatures,
        geometry: GeometryPrompt | None = None,
        image_index: torch.Tensor | None = None,
    ) -> PromptFeatures:
        """Join each prompt's text tokens with its exemplar tokens.

        text: P x L x C (one row per prompt; expand a cached concept with `expand`/`cat`);
        geometry: P prompts of boxes / points, or None for text only; image_index: (P,) image row
        of each prompt (default: prompt i on image i). The exemplar encoder always runs: even a
        text-only prompt gets its image-conditioned `cls` token (official behaviour).
        """
        num_prompts = text.tokens.shape[0]
        coarse = image.detector_maps[-1]  # B x C x h x w
        if image_index is None:
            if coarse.shape[0] != num_prompts:
                raise ValueError(
                    f"{num_prompts} prompts for {coarse.shape[0]} images: pass image_index"
                )
            image_index = torch.arange(num_prompts, device=coarse.device)
        if geometry is None:
            geometry = GeometryPrompt.empty(num_prompts, device=coarse.device)
        if geometry.num_prompts != num_prompts:
            raise ValueError(f"geometry has {geometry.num_prompts} prompts, text has {num_prompts}")
        geo_tokens, geo_padding = self.geometry_encoder(
            geometry, coarse, image.detector_pos[-1], image_index
        )
        tokens = torch.cat((text.tokens.to(geo_tokens.dtype), geo_tokens), dim=1)  # P x (L + T) x C
        padding = torch.cat((text.padding_mask, geo_padding), dim=1)  # P x (L + T)
        return PromptFeatures(tokens, padding, image_index)

    # --- fusion, decoding and heads -------------------------------------------------------

    def decode(
        self, image: VisionFeatures, prompt: PromptFeatures, *, aux: bool = False
    ) -> DetectorOutput:
        """Fuse, decode and predict for every prompt row. `aux=True` adds the earlier layers'
        logits, boxes and presence (deep supervision for training)."""
        coarse = image.detector_maps[-1]  # B x C x h x w
        feature_size = (coarse.shape[2], coarse.shape[3])
        tokens = coarse.flatten(2).transpose(1, 2).contiguous()  # B x hw x C
        pos = (
            image.detector_pos[-1][:1].flatten(2).transpose(1, 2).contiguous()
        )  # 1 x hw x C, all images

        fused = self.transformer.encoder(
            tokens, pos, prompt.tokens, prompt.padding_mask, prompt.image_index
        )  # P x hw x C
        decoded = self.transformer.decoder(
            fused, pos, feature_size, prompt.tokens, prompt.padding_mask
        )
        queries = decoded.hidden[-1]  # P x Q x C
        scored = decoded.hidden if aux else queries[None]  # L' x P x Q x C
        logits = self.dot_prod_scoring(scored, prompt.tokens, prompt.padding_mask)  # L' x P x Q
        masks, semantic = self.segmentation_head(
            fused,
            feature_size,
            image.detector_maps[:-1],
            prompt.image_index,
            prompt.tokens,
            prompt.padding_mask,
            queries,
        )
        earlier = tuple(
            LayerPrediction(logits[i], decoded.boxes[i], decoded.presence_logits[i])
            for i in range(logits.shape[0] - 1)
        )
        return DetectorOutput(
            logits=logits[-1],
            presence_logits=decoded.presence_logits[-1],
            boxes=decoded.boxes[-1],
            mask_logits=masks,
            semantic_logits=semantic,
            queries=queries,
            aux=earlier,
        )

    def forward(
        self,
        images: torch.Tensor,
        token_ids: torch.Tensor,
        geometry: GeometryPrompt | None = None,
        *,
        aux: bool = False,
    ) -> DetectorOutput:
        """One prompt per image: images B x 3 x S x S normalised, token_ids B x L (0 = padding)."""
        image = self.encode_image(images)
        prompt = self.encode_prompt(image, self.encode_text(token_ids), geometry)
        return self.decode(image, prompt, aux=aux)
