"""`FrameModel` on the real networks: `Sam3`'s detector and tracker sharing one backbone pass.

Per batch of frames: resize to the model's square input, normalise (mean = std = 0.5), one
backbone call that runs both necks (detector `convs`, tracker `sam2_convs`); per frame one
detector decode for every concept and tracker calls batched over objects.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from model.backbone.vision_language import TextFeatures, VisionFeatures
from model.detector.geometry import GeometryPrompt
from model.nn.box_ops import xyxy_to_cxcywh
from model.sam3 import Sam3
from model.tracker.mask_decoder import resize_logits, upcast, working_dtype
from model.tracker.memory_bank import MemoryBatch
from model.tracker.tracker import MASK_OUT_BIAS, MASK_OUT_SCALE
from model.tracker.types import ObjectPrompt, TrackerFeatures, TrackStepOutput
from model.types import Concept
from model.video.frame_model import FrameDetections, FrameModel, TrackOutput

VISUAL_ONLY_TEXT = "visual"  # the official text for exemplar-only concepts


class Sam3Frame(NamedTuple):
    """One frame's shared features: detector maps (batch of 1), tracker maps, input size."""

    vision: VisionFeatures
    tracker: TrackerFeatures
    size: tuple[int, int]  # H, W of the input frame (exemplar boxes are in its pixels)


class ConceptPrompt(NamedTuple):
    """A concept's cached text features and its exemplar boxes (input pixels, xyxy)."""

    text: TextFeatures  # tokens 1 x L x C
    boxes: torch.Tensor  # (N, 4) xyxy input pixels
    labels: torch.Tensor  # (N,) bool, True = positive


class Sam3FrameModel:
    """Adapter from `Sam3` to the loop's `FrameModel` seam (device and dtype from the model)."""

    def __init__(self, model: Sam3) -> None:
        if not isinstance(model, Sam3):
            raise TypeError(
                f"VideoTracker needs a Sam3 or a FrameModel, got {type(model).__name__}"
            )
        self.model = model
        tracker = model.config.tracker
        if model.config.vit.image_size != tracker.image_size:
            raise ValueError("the detector and the tracker must share one input size")
        self._param = next(model.parameters())

    @property
    def mask_size(self) -> int:
        return self.model.config.tracker.low_res_size

    @property
    def image_size(self) -> int:
        return self.model.config.tracker.image_size

    @property
    def device(self) -> torch.device:
        return self._param.device

    @property
    def num_maskmem(self) -> int:
        return self.model.config.tracker.num_maskmem

    @property
    def max_object_pointers(self) -> int:
        return self.model.config.tracker.max_obj_ptrs_in_encoder

    # --- per batch of frames ---------------------------------------------------------------

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """HxWx3 uint8 RGB -> (B, 3, S, S) normalised to [-1, 1] on the model's device/dtype."""
        s = self.image_size
        work = working_dtype(self._param.dtype)  # float32, or float64 for float64 models
        batch = []
        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
            x = x.permute(2, 0, 1)[None].to(work) / 255.0  # 1 x 3 x H x W
            batch.append(F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False))
        pixels = (torch.cat(batch) - 0.5) / 0.5
        return pixels.to(self._param.dtype)

    def encode_images(self, images: Sequence[np.ndarray]) -> list[object]:
        vision = self.model.detector.encode_image(self.preprocess(images), tracker=True)
        assert vision.tracker_maps is not None, "the model was built without the tracker neck"
        tracker = self.model.tracker.prepare_features(vision.tracker_maps)
        frames: list[object] = []
        for i, image in enumerate(images):
            row = slice(i, i + 1)
            frames.append(
                Sam3Frame(
                    vision=VisionFeatures(
                        detector_maps=tuple(m[row] for m in vision.detector_maps),
                        detector_pos=tuple(p[row] for p in vision.detector_pos),
                        tracker_maps=None,
                        tracker_pos=None,
                    ),
                    tracker=TrackerFeatures(
                        tracker.feat_s0[row],
                        tracker.feat_s1[row],
                        tracker.pix[row],
                        tracker.pix_pos,
                    ),
                    size=(int(image.shape[0]), int(image.shape[1])),
                )
            )
        return frames

    # --- detector --------------------------------------------------------------------------

    def encode_concept(self, concept: Concept) -> object:
        ids, padding = self.model.tokenize([concept.text or VISUAL_ONLY_TEXT])
        boxes = torch.tensor([b.xyxy for b in concept.exemplars], dtype=torch.float32).reshape(
            -1, 4
        )
        labels = torch.tensor([b.positive for b in concept.exemplars], dtype=torch.bool)
        return ConceptPrompt(self.model.detector.encode_text(ids, padding), boxes, labels)

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        frame = _frame(features)
        prompts = [c for c in concepts if isinstance(c, ConceptPrompt)]
        if len(prompts) != len(concepts):
            raise TypeError("concepts must come from encode_concept")
        text = TextFeatures(
            torch.cat([p.text.tokens for p in prompts]),  # P x L x C
            torch.cat([p.text.padding_mask for p in prompts]),
        )
        h, w = frame.size
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        geometry = GeometryPrompt.from_boxes(
            [xyxy_to_cxcywh(p.boxes / scale) for p in prompts],
            [p.labels for p in prompts],
            device=self.device,
        )
        index = torch.zeros(len(prompts), dtype=torch.long, device=self.device)
        detector = self.model.detector
        out = detector.decode(
            frame.vision, detector.encode_prompt(frame.vision, text, geometry, index)
        )
        masks = upcast(out.mask_logits)  # P x Q x m x m
        if masks.shape[-1] != self.mask_size:
            masks = F.interpolate(
                masks, size=(self.mask_size,) * 2, mode="bilinear", align_corners=False
            )
        scores, boxes = upcast(out.scores), upcast(out.boxes_xyxy)
        return [FrameDetections(scores[p], masks[p], boxes[p]) for p in range(len(prompts))]

    # --- tracker ---------------------------------------------------------------------------

    def track(self, features: object, memory: MemoryBatch) -> TrackOutput:
        return _output(self.model.tracker.track_step(_frame(features).tracker, memory))

    def prompt(self, features: object, prompts: Sequence[ObjectPrompt]) -> TrackOutput:
        """Memories of prompted objects come from their high-resolution masks, as officially:
        a mask prompt's own 16g mask (x20 - 10), a click prediction upsampled to the image."""
        step = self.model.tracker.track_step(_frame(features).tracker, None, prompts, high_res=True)
        assert step.high_res_masks is not None
        size = self.model.config.tracker.memory_mask_size
        rows = []
        for i, p in enumerate(prompts):
            if p.mask is not None:
                mask = p.mask[None, None].to(self.device, working_dtype(self._param.dtype))
                m16 = resize_logits(mask, size, antialias=True)
                rows.append(m16 * MASK_OUT_SCALE + MASK_OUT_BIAS)
            else:
                rows.append(resize_logits(step.high_res_masks[i : i + 1], size, antialias=True))
        return _output(step)._replace(memory_logits=torch.cat(rows)[:, 0])  # B x 16g x 16g

    def encode_memory(
        self,
        features: object,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        from_prompt: torch.Tensor,
    ) -> torch.Tensor:
        return self.model.tracker.encode_memory(
            _frame(features).tracker,
            mask_logits[:, None],  # B x 1 x m x m
            object_score_logits[:, None].to(mask_logits.dtype),
            binarize=from_prompt,
        )


def _frame(features: object) -> Sam3Frame:
    if not isinstance(features, Sam3Frame):
        raise TypeError(f"features must come from encode_images, got {type(features).__name__}")
    return features


def _output(step: TrackStepOutput) -> TrackOutput:
    return TrackOutput(
        mask_logits=step.low_res_masks[:, 0],  # B x m x m
        object_score_logits=upcast(step.object_score_logits[:, 0]),
        iou_scores=upcast(step.iou_scores),
        pointers=step.obj_ptr,
    )


def as_frame_model(model: object) -> FrameModel:
    """A `FrameModel` as is, or a `Sam3` wrapped in `Sam3FrameModel`."""
    if all(hasattr(model, name) for name in ("encode_images", "detect", "track", "encode_memory")):
        return model  # type: ignore[return-value]
    # one adapter per model, so trackers built from one Sam3 can share `step_many`
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = Sam3FrameModel(model)  # type: ignore[arg-type]
    return adapter


_ADAPTERS: weakref.WeakKeyDictionary[object, FrameModel] = weakref.WeakKeyDictionary()
