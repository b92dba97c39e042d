"""The whole online loop against HF `Sam3VideoModel` in streaming mode (transformers 5.23.0).

Both sides hold the same random weights (HF's state dict, perturbed, remapped to official names)
and see the same pixels. Detections are scripted on both sides (HF's `run_detection` replaced, our
`FrameModel.detect` wrapped), so the test exercises everything after the detector: the shared
backbone and tracker neck, batched propagation, association, spawning, occlusion suppression,
memory encoding and selection, and the output rules. Settings that make the two comparable
(reference sam3-references.md §1.6, docs/video.md "Differences"): no NMS and no hole filling
(HF skips both offline), no hot-start removal (HF streaming disables it), HF-style memory
selection (frames t-1 .. t-6, no clearing around prompts), memories stored in bf16.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import Sam3VideoConfig, Sam3VideoModel
from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

from model.box_ops import masks_to_boxes
from model.checkpoint_hf import remap_hf
from model.config import CONFIGS, VideoConfig
from model.frame_model import FrameDetections, TrackOutput
from model.sam.mask_decoder import resize_logits
from model.sam3 import Sam3
from model.sam3_frame_model import Sam3FrameModel, _frame
from model.tracker_types import ObjectPrompt
from model.types import Concept
from model.video import VideoTracker
from tests.model.test_parity_detector import hf_config as hf_detector_config
from tests.model.test_parity_tracker import MAX_COND
from tests.model.test_parity_tracker import hf_config as hf_tracker_config

pytestmark = pytest.mark.parity

# The real module (the package attribute is a placeholder without torchvision).
tracker_video = importlib.import_module(
    "transformers.models.sam3_tracker_video.modeling_sam3_tracker_video"
)
processing_sam3_video = importlib.import_module(
    "transformers.models.sam3_video.processing_sam3_video"
)

CFG = replace(CONFIGS["tiny"], tracker=replace(CONFIGS["tiny"].tracker))
M = CFG.tracker.low_res_size  # 32: the mask grid both sides associate on
HEIGHT, WIDTH = 96, 128  # input frames: not square, so the resize and the output mapping matter
NUM_FRAMES = 12
# IDs must agree on every frame and binary masks on the first one. After that the masks drift
# apart: float32 resizes inside our tracker and bf16 memory storage on both sides flip pixels
# on the threshold, and random weights amplify it (known gap, docs/video.md).
EXACT_UNTIL = 0


def square(y0: int, x0: int, size: int) -> torch.Tensor:
    mask = torch.full((M, M), -10.0)
    mask[y0 : y0 + size, x0 : x0 + size] = 10.0
    return mask


def scripted(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame t's detections: (N,) probabilities and (N, M, M) logits."""
    dets = [(0.9, square(2, 2 + t // 3, 9)), (0.8, square(18, 16 - t // 4, 10))]
    if t >= 4:
        dets.append((0.75, square(22, 1, 7)))  # appears on frame 4
    if t % 3 == 1:  # (not on frame 0: with no tracks yet HF spawns every detection)
        dets.append((0.6, square(4, 22, 6)))  # kept (> 0.5), too weak to start an object
    return torch.tensor([s for s, _ in dets]), torch.stack([m for _, m in dets])


class ScriptedDetector(Sam3FrameModel):
    """The real networks for everything but the detector head, which returns `scripted(t)`."""

    def __init__(self, model: Sam3) -> None:
        super().__init__(model)
        self.t = 0

    def encode_concept(self, concept: Concept) -> object:
        return concept.text

    def prompt(self, features: object, prompts: Sequence[ObjectPrompt]) -> TrackOutput:
        """Mask prompts' memories from the image-size mask, as HF (officially: the 16g mask)."""
        out = super().prompt(features, prompts)
        step = self.model.tracker.track_step(_frame(features).tracker, None, prompts, high_res=True)
        assert step.high_res_masks is not None
        size = self.model.config.tracker.memory_mask_size
        memory = resize_logits(step.high_res_masks, size, antialias=True)[:, 0]
        return out._replace(memory_logits=memory)

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        scores, logits = scripted(self.t)
        self.t += 1
        p = self._param
        return [FrameDetections(scores.to(p), logits.to(p), torch.zeros(len(scores), 4).to(p))]


def build_pair(seed: int = 0) -> tuple[Sam3VideoModel, Sam3]:
    torch.manual_seed(seed)
    hf_cfg = Sam3VideoConfig(
        detector_config=hf_detector_config(CFG),
        tracker_config=hf_tracker_config(CFG.tracker),
        low_res_mask_size=M,
        score_threshold_detection=0.5,
        new_det_thresh=0.7,
        det_nms_thresh=0.0,
        fill_hole_area=0,
        hotstart_delay=0,
        hotstart_unmatch_thresh=0,
        hotstart_dup_thresh=0,
    )
    hf = Sam3VideoModel(hf_cfg).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
        pe = hf.tracker_model.prompt_encoder.shared_embedding.positional_embedding
        hf.tracker_model.shared_image_embedding.positional_embedding.copy_(pe)
    ours = Sam3(CFG).eval()
    missing, unexpected = ours.load_state_dict(remap_hf(hf.state_dict()), strict=False)
    assert all("freqs_cis" in k or "points_" in k for k in missing), missing
    assert not unexpected, unexpected
    return hf, ours


def official_mask_as_output(self, backbone_features, high_res_features, mask_inputs):  # noqa: ANN001, ANN201
    """HF's `_use_mask_as_output` with the official resolutions: the mask prompt is resized to
    the memory-encoder size (16g; official `input_mask_size`), not to the image size, before it
    becomes the output and (through `mask_downsample`) the object pointer. The memory is still
    encoded from that mask at the image size (HF's batching); `ScriptedDetector` does the same."""
    size = 4 * self.prompt_encoder.mask_input_size[0]
    m16 = F.interpolate(
        mask_inputs.to(backbone_features.dtype),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    high16 = m16 * 20.0 - 10.0
    low = F.interpolate(
        high16,
        size=self.prompt_encoder.mask_input_size,
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    # HF batches every object's high-res mask at the image size (memories are encoded from it)
    high = F.interpolate(
        high16, size=(self.image_size,) * 2, mode="bilinear", align_corners=False, antialias=True
    )
    pointer = self._single_frame_forward(
        input_masks=self.mask_downsample(m16),
        image_embeddings=high_res_features + [backbone_features],
        multimask_output=False,  # official `_forward_sam_heads` default; HF asks for 3 masks
    ).object_pointer
    appearing = (mask_inputs.flatten(1) > 0).any(dim=1, keepdim=True).to(high.dtype)
    pointer = appearing * pointer + (1 - appearing) * self.no_object_pointer
    return tracker_video.Sam3TrackerVideoImageSegmentationOutput(
        iou_scores=high.new_ones(mask_inputs.size(0), 1),
        pred_masks=low,
        high_res_masks=high,
        object_pointer=pointer,
        object_score_logits=(20.0 * appearing - 10.0).unsqueeze(-1),
        image_embeddings=high_res_features + [backbone_features],
    )


def hf_step(hf: Sam3VideoModel, session: Sam3VideoInferenceSession, pixels: torch.Tensor, t: int):
    scores, logits = scripted(t)
    keep = scores > 0.5
    det_out = {
        "bbox": torch.zeros(int(keep.sum()), 4, device=pixels.device),
        "mask": logits[keep].to(pixels.device),
        "scores": scores[keep].to(pixels.device),
    }
    hf.run_detection = lambda inference_session, vision_embeds: {0: det_out}
    out = hf(inference_session=session, frame=pixels)
    processor = object.__new__(processing_sam3_video.Sam3VideoProcessor)  # needs no tokenizer
    result = processor.postprocess_outputs(session, out)
    return result


@pytest.fixture(autouse=True)
def _torchvision_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF's postprocessing takes boxes from torchvision (absent here); boxes are not compared."""
    monkeypatch.setattr(processing_sam3_video, "masks_to_boxes", masks_to_boxes, raising=False)
    monkeypatch.setattr(
        tracker_video.Sam3TrackerVideoModel, "_use_mask_as_output", official_mask_as_output
    )


@torch.no_grad()
def test_loop_matches_hf_streaming() -> None:
    torch.set_num_threads(2)
    hf, ours = build_pair()
    hf.double(), ours.double()  # float64: equal binary masks need agreement far below 1e-4
    session = Sam3VideoInferenceSession(video_height=HEIGHT, video_width=WIDTH, dtype=torch.float64)
    session.add_prompt("object")
    frame_model = ScriptedDetector(ours)
    video_cfg = VideoConfig(
        det_nms_thresh=0.0,
        fill_hole_area=0,
        hotstart_delay=0,
        max_cond_frames=MAX_COND,
        use_memory_selection=False,
        clear_memory_around_condition=False,
    )
    tracker = VideoTracker(frame_model, video_cfg)
    tracker.add_concept(Concept(text="object"))
    rng = np.random.default_rng(0)
    seen_ids: set[int] = set()
    differing = total = 0
    for t in range(NUM_FRAMES):
        image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        expected = hf_step(hf, session, frame_model.preprocess([image]), t)
        got = tracker.step(image, pts=t)
        assert [o.object_id for o in got.objects] == expected["object_ids"].tolist(), f"frame {t}"
        for k, obj in enumerate(got.objects):
            theirs = expected["masks"][k].numpy()
            differing += int((obj.mask != theirs).sum())
            total += int((obj.mask | theirs).sum())
            if t <= EXACT_UNTIL:
                assert np.array_equal(obj.mask, theirs), f"frame {t}, object {obj.object_id}"
        seen_ids.update(o.object_id for o in got.objects)
    assert seen_ids >= {0, 1, 2, 3}
    print(f"mask pixels that differ after frame {EXACT_UNTIL}: {differing} of {total}")
