"""Parity of our tracker with HF `Sam3TrackerVideoModel` (transformers 5.23.0), streaming.

Both sides get identical random weights (HF's state dict, every tensor perturbed, converted to the
official `tracker.*` names) and identical tracker-neck features per frame (fed to HF through its
vision-feature cache, so the ViT plays no part). HF runs its own streaming session: prompts via
`add_point_inputs`, one `model(inference_session=..., frame=...)` call per frame. Our side runs
one batched `track_step` + `encode_memory` per frame and keeps memories in `MemoryBank`s
configured the way HF selects memories (no memory selection, no clearing around prompts; see
docs/tracker.md "HF differences").
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
from transformers import Sam3TrackerVideoConfig, Sam3TrackerVideoModel
from transformers.models.sam3.modeling_sam3 import Sam3SinePositionEmbedding
from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import (
    Sam3TrackerVideoInferenceSession,
)

from model.config import CONFIGS, TrackerConfig
from model.tracker.memory_bank import MemoryBank, MemoryCaps, MemoryEntry, MemoryView, stack_views
from model.tracker.tracker import Tracker
from model.tracker.types import ObjectPrompt, TrackerFeatures
from tests.model.hf_float64 import keep_float64

pytestmark = pytest.mark.parity

# tiny tracker with small memory caps, so 10 frames exercise every cap
CONFIG = replace(CONFIGS["tiny"].tracker, num_maskmem=3, max_obj_ptrs_in_encoder=4)
MAX_COND = 2
NUM_FRAMES = 10
OBJECT_SCORE_SHIFT = 0.8


def hf_config(c: TrackerConfig) -> Sam3TrackerVideoConfig:
    g = c.grid_size
    vit = dict(
        model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, image_size=c.image_size, patch_size=c.backbone_stride,
        window_size=4, global_attn_indexes=[0], pretrain_image_size=56,
    )  # fmt: skip
    return Sam3TrackerVideoConfig(
        vision_config=dict(
            model_type="sam3_vision_model",
            backbone_config=vit,
            fpn_hidden_size=c.d_model,
            backbone_feature_sizes=[[4 * g] * 2, [2 * g] * 2, [g] * 2],
        ),  # fmt: skip
        prompt_encoder_config=dict(
            hidden_size=c.d_model,
            image_size=c.image_size,
            patch_size=c.backbone_stride,
            mask_input_channels=c.mask_in_chans,
        ),  # fmt: skip
        mask_decoder_config=dict(
            hidden_size=c.d_model,
            mlp_dim=c.decoder_mlp_dim,
            num_attention_heads=c.decoder_heads,
            num_hidden_layers=c.decoder_depth,
            iou_head_hidden_dim=c.iou_head_hidden_dim,
        ),  # fmt: skip
        image_size=c.image_size,
        num_maskmem=c.num_maskmem,
        max_object_pointers_in_encoder=c.max_obj_ptrs_in_encoder,
        max_cond_frame_num=MAX_COND,
        memory_attention_hidden_size=c.d_model,
        memory_attention_num_layers=c.memory_layers,
        memory_attention_num_attention_heads=c.memory_heads,
        memory_attention_feed_forward_hidden_size=c.memory_mlp_dim,
        memory_encoder_hidden_size=c.d_model,
        memory_encoder_output_channels=c.mem_dim,
        mask_downsampler_embed_dim=c.d_model,
        memory_fuser_embed_dim=c.d_model,
        memory_fuser_intermediate_dim=c.fuser_mlp_dim,
        memory_fuser_num_layers=c.fuser_layers,
    )


# HF name -> official name, applied in order (reference sam3-hf-key-mapping.tsv, tracker rows)
_RULES = [
    (r"^prompt_encoder\.shared_embedding\.positional_embedding$",
     "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"),
    (r"^prompt_encoder\.mask_embed\.conv1\.", "sam_prompt_encoder.mask_downscaling.0."),
    (r"^prompt_encoder\.mask_embed\.layer_norm1\.", "sam_prompt_encoder.mask_downscaling.1."),
    (r"^prompt_encoder\.mask_embed\.conv2\.", "sam_prompt_encoder.mask_downscaling.3."),
    (r"^prompt_encoder\.mask_embed\.layer_norm2\.", "sam_prompt_encoder.mask_downscaling.4."),
    (r"^prompt_encoder\.mask_embed\.conv3\.", "sam_prompt_encoder.mask_downscaling.6."),
    (r"^prompt_encoder\.", "sam_prompt_encoder."),
    (r"^mask_decoder\.upscale_conv1\.", "sam_mask_decoder.output_upscaling.0."),
    (r"^mask_decoder\.upscale_layer_norm\.", "sam_mask_decoder.output_upscaling.1."),
    (r"^mask_decoder\.upscale_conv2\.", "sam_mask_decoder.output_upscaling.3."),
    (r"\.mlp\.proj_in\.", ".mlp.lin1."),
    (r"\.mlp\.proj_out\.", ".mlp.lin2."),
    (r"^mask_decoder\.transformer\.layer_norm_final_attn\.",
     "sam_mask_decoder.transformer.norm_final_attn."),
    (r"^mask_decoder\.", "sam_mask_decoder."),
    (r"\.layers\.0\.(weight|bias)$", r".layers.1.\1"),  # MLP hidden layer, before proj_in
    (r"\.proj_in\.", ".layers.0."),
    (r"\.proj_out\.", ".layers.2."),
    (r"\.layer_norm(\d)\.", r".norm\1."),
    (r"\.o_proj\.", ".out_proj."),
    (r"^memory_attention\.layer_norm\.", "transformer.encoder.norm."),
    (r"^memory_attention\.", "transformer.encoder."),
    (r"^memory_encoder\.feature_projection\.", "maskmem_backbone.pix_feat_proj."),
    (r"^memory_encoder\.projection\.", "maskmem_backbone.out_proj."),
    (r"^memory_encoder\.memory_fuser\.layers\.(\d+)\.depthwise_conv\.",
     r"maskmem_backbone.fuser.layers.\1.dwconv."),
    (r"^memory_encoder\.memory_fuser\.layers\.(\d+)\.pointwise_conv(\d)\.",
     r"maskmem_backbone.fuser.layers.\1.pwconv\2."),
    (r"^memory_encoder\.memory_fuser\.layers\.(\d+)\.layer_norm\.",
     r"maskmem_backbone.fuser.layers.\1.norm."),
    (r"^memory_encoder\.memory_fuser\.layers\.(\d+)\.scale$",
     r"maskmem_backbone.fuser.layers.\1.gamma"),
    (r"^object_pointer_proj\.", "obj_ptr_proj."),
    (r"^temporal_positional_encoding_projection_layer\.", "obj_ptr_tpos_proj."),
    (r"^memory_temporal_positional_encoding$", "maskmem_tpos_enc"),
    (r"^occlusion_spatial_embedding_parameter$", "no_obj_embed_spatial"),
    (r"^no_object_pointer$", "no_obj_ptr"),
    (r"^no_memory_embedding$", "no_mem_embed"),
    (r"^no_memory_positional_encoding$", "no_mem_pos_enc"),
]  # fmt: skip


def hf_to_official(
    hf_state: dict[str, torch.Tensor], num_down_layers: int
) -> dict[str, torch.Tensor]:
    """HF `Sam3TrackerVideoModel` tensors -> official `tracker.*` names (without the prefix)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in hf_state.items():
        if name == "shared_image_embedding.positional_embedding":
            continue  # a copy of the prompt encoder's matrix
        if name == "prompt_encoder.point_embed.weight":
            for i in range(tensor.shape[0]):
                out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = tensor[i : i + 1]
            continue
        down = re.match(
            r"^memory_encoder\.mask_downsampler\.(layers\.(\d+)\.(conv|layer_norm)|final_conv)\.(\w+)$",
            name,
        )
        if down:
            layer, kind, param = down.group(2), down.group(3), down.group(4)
            index = (
                3 * num_down_layers if layer is None else 3 * int(layer) + (kind == "layer_norm")
            )
            out[f"maskmem_backbone.mask_downsampler.encoder.{index}.{param}"] = tensor
            continue
        for pattern, repl in _RULES:
            name = re.sub(pattern, repl, name)
        out[name] = tensor
    return out


def build_pair(seed: int, dtype: torch.dtype) -> tuple[Sam3TrackerVideoModel, Tracker]:
    """HF model and ours with the same random weights (every HF tensor perturbed: HF zero-inits
    several, which would hide indexing bugs). The object-score bias is shifted so that objects
    are judged absent on some frames (the occlusion path)."""
    torch.manual_seed(seed)
    hf = Sam3TrackerVideoModel(hf_config(CONFIG), remove_vision_encoder=True).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
        pe = hf.prompt_encoder.shared_embedding.positional_embedding
        pe.normal_()
        hf.shared_image_embedding.positional_embedding.copy_(pe)
        hf.mask_decoder.pred_obj_score_head.proj_out.bias.sub_(OBJECT_SCORE_SHIFT)
    hf.to(dtype)
    ours = Tracker(CONFIG, dtype=dtype).eval()
    state = hf_to_official(hf.state_dict(), num_down_layers=4)
    ours.load_state_dict(state, strict=True)
    return hf, ours


def frame_maps(
    c: TrackerConfig, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    g, d = c.grid_size, c.d_model
    return [torch.randn(1, d, s * g, s * g, generator=generator).to(dtype) for s in (4, 2, 1)]


def hf_cache_entry(features: TrackerFeatures) -> dict[str, list[torch.Tensor]]:
    """HF caches flattened (HW, B, C) maps with conv_s0 / conv_s1 already applied."""

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).permute(2, 0, 1)

    maps = [features.feat_s0, features.feat_s1, features.pix]
    pos = [torch.zeros_like(features.feat_s0), torch.zeros_like(features.feat_s1), features.pix_pos]
    return {"vision_feats": [flat(m) for m in maps], "vision_pos_embeds": [flat(p) for p in pos]}


def batch_views(views: list[MemoryView | None]) -> object:
    """Stack the non-empty views; objects on a first (initial-conditioning) frame get empty rows."""
    full = [i for i, v in enumerate(views) if v is not None]
    if not full:
        return None
    part = stack_views([v for v in views if v is not None])
    if len(full) == len(views):
        return part  # with its views: the tracker's cached-projection path
    rows = torch.tensor(full)
    return type(part)(
        *(t.new_zeros((len(views), *t.shape[1:])).index_copy(0, rows, t) for t in part.tensors())
    )


# frame -> object id -> (points, labels); labels 2 / 3 mark box corners, as HF's processor does
PROMPTS: dict[int, dict[int, tuple[list[list[float]], list[int]]]] = {
    0: {1: ([[40.0, 52.0]], [1]), 2: ([[20.0, 30.0], [90.0, 100.0]], [2, 3])},
    3: {3: ([[70.0, 20.0], [30.0, 80.0]], [1, 0])},
    5: {1: ([[60.0, 48.0]], [1])},
}


def to_prompt(points: list[list[float]], labels: list[int]) -> ObjectPrompt:
    if labels[:2] == [2, 3]:
        box = torch.tensor(points[0] + points[1])
        rest = points[2:]
        if not rest:
            return ObjectPrompt(box=box)
        return ObjectPrompt(points=torch.tensor(rest), labels=torch.tensor(labels[2:]), box=box)
    return ObjectPrompt(points=torch.tensor(points), labels=torch.tensor(labels))


@torch.no_grad()
def test_sine_position_matches_hf_neck() -> None:
    c = CONFIG
    hf_pe = Sam3SinePositionEmbedding(num_position_features=c.d_model // 2, normalize=True)
    shape = torch.Size((1, c.d_model, c.grid_size, c.grid_size))
    ours = Tracker(c).eval().prepare_features(frame_maps(c, torch.Generator().manual_seed(0)))
    torch.testing.assert_close(ours.pix_pos, hf_pe(shape, "cpu", torch.float32), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("dtype", "tol"),
    [
        (torch.float64, 1e-4),  # same math: agreement far below the tolerance
        (torch.float32, 3e-3),  # float32 rounding, amplified by random weights (logits ~10)
    ],
)
@torch.no_grad()
def test_tracker_matches_hf_streaming_points_and_boxes(
    dtype: torch.dtype, tol: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(2)
    keep_float64(monkeypatch)  # HF's float32 steps in float64 too, as ours (no-op in float32)
    hf, ours = build_pair(seed=0, dtype=dtype)
    session = Sam3TrackerVideoInferenceSession(
        video_height=CONFIG.image_size, video_width=CONFIG.image_size, dtype=dtype
    )
    caps = MemoryCaps(
        max_cond_frames=MAX_COND,
        num_recent=CONFIG.num_maskmem - 1,
        max_object_pointers=CONFIG.max_obj_ptrs_in_encoder,
        use_memory_selection=False,  # HF tracks with frames t-1 .. t-(num_maskmem-1)
        clear_around_condition=False,  # HF keeps memories around new prompts
    )
    banks: dict[int, MemoryBank] = {}
    generator = torch.Generator().manual_seed(1)
    seen_absent = seen_present = False
    for t in range(NUM_FRAMES):
        features = ours.prepare_features(frame_maps(CONFIG, generator, dtype))
        new = PROMPTS.get(t, {})

        # --- HF: prompts into the session, features into its cache, one streamed frame
        for obj_id, (points, labels) in new.items():
            session.add_point_inputs(
                session.obj_id_to_idx(obj_id),
                t,
                {
                    "point_coords": torch.tensor([[points]]),
                    "point_labels": torch.tensor([[labels]], dtype=torch.int32),
                },
            )
        session.obj_with_new_inputs = list(new)
        session.cache.cache_vision_features(t, hf_cache_entry(features))
        hf_out = hf(
            inference_session=session,
            frame=torch.zeros(3, CONFIG.image_size, CONFIG.image_size, dtype=dtype),
        )

        # --- ours: one batched tracker call for all objects, then one memory-encoder call
        for obj_id in new:
            banks.setdefault(obj_id, MemoryBank(caps))
        ids = list(banks)
        assert ids == hf_out.object_ids
        # a prompt on a new frame is an initial conditioning frame: no memory (as HF)
        views = [None if i in new else banks[i].read(t) for i in ids]
        prompts = [to_prompt(*new[i]) if i in new else None for i in ids]
        out = ours.track_step(features, batch_views(views), prompts, high_res=True)
        assert out.high_res_masks is not None
        memories = ours.encode_memory(
            features, out.high_res_masks, out.object_score_logits, binarize=bool(new)
        )  # HF binarizes every object's mask on a frame where any object has clicks
        for j, obj_id in enumerate(ids):
            score = float(out.object_score_logits[j])
            banks[obj_id].add(
                MemoryEntry(
                    frame_index=t,
                    features=memories[j].to(torch.bfloat16),  # HF and official store bf16
                    pointer=out.obj_ptr[j],
                    score=score,
                    is_cond=obj_id in new,
                )
            )
            seen_absent |= score <= 0
            seen_present |= score > 0

        hf_masks = hf_out.pred_masks.reshape(len(ids), *out.low_res_masks.shape[-2:])
        hf_scores = hf_out.object_score_logits.reshape(len(ids))
        torch.testing.assert_close(
            out.low_res_masks[:, 0], hf_masks, atol=tol, rtol=0, msg=f"masks, frame {t}"
        )
        torch.testing.assert_close(
            out.object_score_logits[:, 0], hf_scores, atol=tol, rtol=0, msg=f"scores, frame {t}"
        )
    # the weights must exercise both sides of the occlusion rule for the test to mean something
    assert seen_present and seen_absent
