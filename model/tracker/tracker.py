"""The SAM 3 tracker (`tracker.*` keys): SAM 2-style propagation of N objects in one batched call.

Per frame (official `Sam3TrackerBase.track_step`; docs/tracker.md):

    neck maps --prepare_features--> TrackerFeatures (conv_s0 / conv_s1 skips, sine position)
    for every object, batched:
        features + memories  --memory attention--> conditioned features
                             (no memory yet: features + no_mem_embed; mask prompt: raw features)
        conditioned features + prompt tokens --SAM mask decoder--> masks, IoUs, object score
        chosen mask token --obj_ptr_proj--> object pointer (no_obj_ptr when the object is absent)
    then, after the caller has post-processed the masks:
        features + mask --encode_memory--> spatial memory (+ no_obj_embed_spatial when absent)

Weights only: memories live in the caller's `MemoryBank`s and arrive as one padded
`MemoryBatch` (batching rules in docs/tracker.md); pointer positions in model/tracker/object_pointer.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from model.config import TrackerConfig
from model.nn.layers import MLP, Factory
from model.nn.position import sine_position_grid
from model.tracker.mask_decoder import (
    DecoderOutput,
    MaskDecoder,
    resize_logits,
    select_masks,
    upcast,
    working_dtype,
)
from model.tracker.memory_attention import MemoryAttention, memory_tokens
from model.tracker.memory_bank import MemoryBatch
from model.tracker.memory_encoder import MemoryEncoder
from model.tracker.object_pointer import pointer_positions
from model.tracker.prompt_encoder import NOT_A_POINT, PromptEncoder
from model.tracker.two_way_transformer import TwoWayTransformer
from model.tracker.types import ObjectPrompt, TrackerFeatures, TrackStepOutput

NO_OBJ_SCORE = -1024.0  # mask logit for objects judged absent (official placeholder)
MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0  # a mask prompt taken as output: logits -10 / +10


class Tracker(nn.Module):
    def __init__(
        self,
        config: TrackerConfig,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        c = config
        if c.d_model % c.mem_dim:
            raise ValueError(f"d_model {c.d_model} must be a multiple of mem_dim {c.mem_dim}")
        self.config = c
        # temporal slots of spatial memories: row k - 1 for the k-th most recent, last row for
        # conditioning frames
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(c.num_maskmem, 1, 1, c.mem_dim, **factory))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, c.d_model, **factory))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, c.d_model, **factory))  # unused
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, c.d_model, **factory))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, c.mem_dim, **factory))
        # turns a (16g)^2 mask prompt into a (4g)^2 dense prompt for the pointer of a mask input
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4, **factory)
        # official path `tracker.transformer.encoder` (an encoder-only wrapper)
        self.transformer = nn.ModuleDict(
            {
                "encoder": MemoryAttention(
                    d_model=c.d_model,
                    mem_dim=c.mem_dim,
                    num_layers=c.memory_layers,
                    num_heads=c.memory_heads,
                    mlp_dim=c.memory_mlp_dim,
                    rope_theta=c.rope_theta,
                    input_pos_scale=c.memory_input_pos_scale,
                    **factory,
                )
            }
        )
        self.maskmem_backbone = MemoryEncoder(
            d_model=c.d_model,
            mem_dim=c.mem_dim,
            downsampler_kernel_size=c.downsampler_kernel_size,
            downsampler_stride=c.downsampler_stride,
            downsampler_total_stride=c.downsampler_total_stride,
            fuser_layers=c.fuser_layers,
            fuser_kernel_size=c.fuser_kernel_size,
            fuser_mlp_dim=c.fuser_mlp_dim,
            fuser_layer_scale_init=c.fuser_layer_scale_init,
            **factory,
        )
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=c.d_model,
            grid_size=c.grid_size,
            image_size=c.image_size,
            mask_in_chans=c.mask_in_chans,
            **factory,
        )
        self.sam_mask_decoder = MaskDecoder(
            transformer=TwoWayTransformer(
                depth=c.decoder_depth,
                embedding_dim=c.d_model,
                num_heads=c.decoder_heads,
                mlp_dim=c.decoder_mlp_dim,
                attention_downsample_rate=c.decoder_attention_downsample,
                **factory,
            ),
            transformer_dim=c.d_model,
            num_multimask_outputs=c.num_multimask_outputs,
            iou_head_depth=c.iou_head_depth,
            iou_head_hidden_dim=c.iou_head_hidden_dim,
            **factory,
        )
        self.obj_ptr_proj = MLP(c.d_model, c.d_model, c.d_model, 3, **factory)
        self.obj_ptr_tpos_proj = nn.Linear(c.d_model, c.mem_dim, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official random init of the bare parameters (trunc normal, std 0.02)."""
        for p in (
            self.maskmem_tpos_enc,
            self.no_mem_embed,
            self.no_mem_pos_enc,
            self.no_obj_ptr,
            self.no_obj_embed_spatial,
        ):
            if not p.is_meta:
                nn.init.trunc_normal_(p, std=0.02)

    @property
    def memory_attention(self) -> MemoryAttention:
        encoder = self.transformer["encoder"]
        assert isinstance(encoder, MemoryAttention)
        return encoder

    # --- per frame --------------------------------------------------------------------------

    def prepare_features(self, maps: Sequence[torch.Tensor]) -> TrackerFeatures:
        """The tracker neck's three maps (B, C, 4g, 4g), (B, C, 2g, 2g), (B, C, g, g) ->
        TrackerFeatures. Run once per frame; every `track_step` / `encode_memory` reuses it."""
        if len(maps) != 3:
            raise ValueError(f"the tracker reads 3 neck levels, got {len(maps)}")
        s0, s1, pix = maps
        g = self.config.grid_size
        if pix.shape[-2:] != (g, g) or s0.shape[-2:] != (4 * g, 4 * g):
            raise ValueError(
                f"neck maps {[tuple(m.shape) for m in maps]} do not fit a {g} x {g} tracker grid"
            )
        pos = sine_position_grid(
            g, g, self.config.d_model, device=pix.device, dtype=working_dtype(pix.dtype)
        ).to(pix.dtype)
        return TrackerFeatures(
            feat_s0=self.sam_mask_decoder.conv_s0(s0),
            feat_s1=self.sam_mask_decoder.conv_s1(s1),
            pix=pix,
            pix_pos=pos.unsqueeze(0),
        )

    def track_step(
        self,
        features: TrackerFeatures,
        memory: MemoryBatch | None,
        prompts: Sequence[ObjectPrompt | None] | None = None,
        *,
        high_res: bool = False,
    ) -> TrackStepOutput:
        """Predict N objects on one frame in one batched call.

        `memory` holds each object's selected memories (N rows; an object whose row has no valid
        entry is treated as having none: features + no_mem_embed, the official first-frame
        path). `prompts` has one entry per object (None = no prompt). N comes from whichever is
        given; with both they must agree. `high_res=True` also returns image-size masks.
        """
        n = _num_objects(memory, prompts)
        prompts = list(prompts) if prompts is not None else [None] * n
        feats = features.expand(n)
        is_mask = [p is not None and p.mask is not None for p in prompts]
        mask_rows = torch.tensor(is_mask, device=feats.pix.device)

        # 1. condition each object's features on its memories
        conditioned = self._condition(feats, memory, mask_rows)  # N x C x g x g

        # 2. prompt encoding: dense mask embeddings for mask prompts, point tokens otherwise
        masks_16g = self._mask_prompts(prompts)  # index -> 1 x 1 x 16g x 16g
        dense = self.sam_prompt_encoder.no_mask_dense(n).to(conditioned.dtype)
        if masks_16g:
            rows = torch.tensor(list(masks_16g), device=dense.device)
            mask_prompt = self.mask_downsample(torch.cat(list(masks_16g.values())).to(dense.dtype))
            dense = dense.index_copy(0, rows, self.sam_prompt_encoder.embed_masks(mask_prompt))

        # 3. SAM mask decoder, one call per distinct number of point tokens
        decoded = self._decode(feats, conditioned, dense, prompts)
        multimask = torch.tensor(
            [self._use_multimask(p) for p in prompts], device=conditioned.device
        )
        chosen = select_masks(
            decoded,
            multimask,
            dynamic_stability=self.config.dynamic_multimask_via_stability,
            stability_delta=self.config.dynamic_multimask_stability_delta,
            stability_thresh=self.config.dynamic_multimask_stability_thresh,
        )

        # 4. absent objects: placeholder mask and the no-object pointer
        scores = decoded.object_score_logits  # N x 1
        appearing = scores > 0
        low_res = torch.where(appearing[:, :, None, None], upcast(chosen.masks), NO_OBJ_SCORE)
        obj_ptr = torch.where(appearing, self.obj_ptr_proj(chosen.tokens), self.no_obj_ptr)
        ious = chosen.ious

        # 5. mask prompts are taken as the output (official `_use_mask_as_output`)
        high_res_prompt: torch.Tensor | None = None
        if masks_16g:
            rows = torch.tensor(list(masks_16g), device=low_res.device)
            m16 = torch.cat(list(masks_16g.values()))  # M x 1 x 16g x 16g
            high_res_prompt = m16 * MASK_OUT_SCALE + MASK_OUT_BIAS
            present = (m16 > 0).flatten(1).any(dim=1, keepdim=True)  # M x 1
            low_res = low_res.index_copy(
                0, rows, resize_logits(high_res_prompt, self.config.low_res_size, antialias=True)
            )
            ious = ious.index_copy(0, rows, torch.ones_like(rows, dtype=ious.dtype))
            scores = scores.index_copy(
                0, rows, (present.to(scores.dtype) * MASK_OUT_SCALE + MASK_OUT_BIAS)
            )
            obj_ptr = obj_ptr.index_copy(
                0, rows, torch.where(present, obj_ptr[rows], self.no_obj_ptr)
            )

        high = None
        if high_res:
            high = resize_logits(low_res, self.config.image_size, antialias=False)
            if high_res_prompt is not None:
                rows = torch.tensor(list(masks_16g), device=high.device)
                prompt_hr = resize_logits(high_res_prompt, self.config.image_size, antialias=True)
                high = high.index_copy(0, rows, prompt_hr)
        return TrackStepOutput(
            low_res_masks=low_res,
            high_res_masks=high,
            iou_scores=ious,
            object_score_logits=scores,
            obj_ptr=obj_ptr,
        )

    def encode_memory(
        self,
        features: TrackerFeatures,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        *,
        binarize: bool | torch.Tensor = False,
    ) -> torch.Tensor:
        """Spatial memories of N objects: (N, mem_dim, g, g).

        mask_logits (N, 1, H, W) at any size (low-res 4g, image size, or 16g) are resized to
        16g (bilinear, antialiased), then turned into probabilities (sigmoid, or a hard > 0 when
        `binarize`, per object if a (N,) bool tensor: official for masks from clicks), scaled
        x20 - 10 and encoded with the frame's features. Objects with object_score_logits (N, 1)
        <= 0 get `no_obj_embed_spatial` added. The official tracker stores the result in
        bfloat16; that is the caller's choice.
        """
        n = mask_logits.shape[0]
        if mask_logits.ndim != 4 or mask_logits.shape[1] != 1:
            raise ValueError(f"mask_logits must be (N, 1, H, W), got {tuple(mask_logits.shape)}")
        if object_score_logits.shape != (n, 1):
            raise ValueError(
                f"object_score_logits must be ({n}, 1), got {tuple(object_score_logits.shape)}"
            )
        feats = features.expand(n)
        masks = resize_logits(mask_logits, self.config.memory_mask_size, antialias=True)
        hard = torch.as_tensor(binarize, device=masks.device).reshape(-1, 1, 1, 1)
        probs = torch.where(hard, (masks > 0).to(masks.dtype), masks.sigmoid())
        scaled = (
            probs * self.config.sigmoid_scale_for_mem_enc + self.config.sigmoid_bias_for_mem_enc
        )
        memory: torch.Tensor = self.maskmem_backbone(feats.pix, scaled)  # N x mem_dim x g x g
        absent = (object_score_logits <= 0).to(memory.dtype)[:, :, None, None]  # N x 1 x 1 x 1
        return memory + absent * self.no_obj_embed_spatial[:, :, None, None]

    # --- steps ------------------------------------------------------------------------------

    def _condition(
        self, feats: TrackerFeatures, memory: MemoryBatch | None, mask_rows: torch.Tensor
    ) -> torch.Tensor:
        """Memory-conditioned features (N, C, g, g): memory attention for objects with memories,
        + no_mem_embed for those without, the raw features for mask prompts."""
        pix = feats.pix
        no_mem = self.no_mem_embed.reshape(1, -1, 1, 1)
        conditioned = torch.where(mask_rows[:, None, None, None], pix, pix + no_mem)
        if memory is None:
            return conditioned
        has_memory = (memory.valid.any(dim=1) | memory.pointer_valid.any(dim=1)) & ~mask_rows
        rows = has_memory.nonzero().squeeze(1)
        if rows.numel() == 0:
            return conditioned
        if rows.numel() < has_memory.numel():
            memory = MemoryBatch(*(t[rows] for t in memory))
            pix = pix[rows] if pix.shape[0] > 1 else pix
        c = self.config
        keys = memory_tokens(
            memory,
            tpos_enc=self.maskmem_tpos_enc.reshape(c.num_maskmem, c.mem_dim),
            pointer_pos=pointer_positions(  # N x P x mem_dim
                self.obj_ptr_tpos_proj, memory.pointer_distances, c.max_obj_ptrs_in_encoder
            ),
            dtype=pix.dtype,
        )
        attended = self.memory_attention(pix.expand(rows.numel(), -1, -1, -1), feats.pix_pos, keys)
        return conditioned.index_copy(0, rows, attended.to(conditioned.dtype))

    def _mask_prompts(self, prompts: list[ObjectPrompt | None]) -> dict[int, torch.Tensor]:
        """Mask prompts resized to the memory-encoder size 16g: object index -> (1, 1, 16g, 16g)."""
        size = self.config.memory_mask_size
        out: dict[int, torch.Tensor] = {}
        for i, prompt in enumerate(prompts):
            if prompt is not None and prompt.mask is not None:
                param = self.no_obj_ptr
                mask = prompt.mask[None, None].to(param.device, working_dtype(param.dtype))
                out[i] = resize_logits(mask, size, antialias=True)
        return out

    def _decode(
        self,
        feats: TrackerFeatures,
        conditioned: torch.Tensor,
        dense: torch.Tensor,
        prompts: list[ObjectPrompt | None],
    ) -> DecoderOutput:
        """Run the mask decoder on every object, grouping objects by their number of points.

        Objects without clicks or box get one "not a point" (official: an empty point with
        label -1), so with the padding token they decode with two not-a-point tokens.
        """
        device = conditioned.device
        image_pe = self.sam_prompt_encoder.dense_pe().to(conditioned.dtype)
        groups: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(0 if prompt is None else prompt.num_points, []).append(i)
        parts: list[tuple[torch.Tensor, DecoderOutput]] = []
        for num_points, members in groups.items():
            coords = torch.zeros(len(members), max(num_points, 1), 2, device=device)
            labels = torch.full_like(coords[..., 0], NOT_A_POINT, dtype=torch.long)
            for j, i in enumerate(members):
                prompt = prompts[i]
                if prompt is not None and num_points:
                    xy, lab = prompt.points_and_labels()
                    coords[j], labels[j] = xy.to(device), lab.to(device)
            sparse = self.sam_prompt_encoder.embed_points(coords, labels)  # n x (P+1) x C
            rows = torch.tensor(members, device=device)
            whole = len(members) == conditioned.shape[0]
            out = self.sam_mask_decoder(
                image=conditioned if whole else conditioned[rows],
                image_pe=image_pe,
                sparse=sparse.to(conditioned.dtype),
                dense=dense if whole else dense[rows],
                feat_s0=feats.feat_s0 if whole else feats.feat_s0[rows],
                feat_s1=feats.feat_s1 if whole else feats.feat_s1[rows],
            )
            parts.append((rows, out))
        if len(parts) == 1:
            return parts[0][1]
        rows = torch.cat([r for r, _ in parts])
        order = torch.empty_like(rows)
        order[rows] = torch.arange(rows.numel(), device=device)
        return DecoderOutput(
            *(torch.cat([getattr(o, f) for _, o in parts])[order] for f in DecoderOutput._fields)
        )

    def _use_multimask(self, prompt: ObjectPrompt | None) -> bool:
        """Official `_use_multimask`: 3 candidate masks for 0..1 clicks (prompted or tracking)."""
        c = self.config
        if prompt is not None and prompt.mask is not None:
            return False  # the pointer of a mask prompt comes from the single-mask output
        num_points = 0 if prompt is None else prompt.num_points
        return (
            c.multimask_output_in_sam
            and (prompt is not None or c.multimask_output_for_tracking)
            and c.multimask_min_pt_num <= num_points <= c.multimask_max_pt_num
        )


def _num_objects(memory: MemoryBatch | None, prompts: Sequence[ObjectPrompt | None] | None) -> int:
    if memory is None and prompts is None:
        raise ValueError("track_step needs memories, prompts, or both")
    n_mem = None if memory is None else int(memory.features.shape[0])
    n_prompts = None if prompts is None else len(prompts)
    if n_mem is not None and n_prompts is not None and n_mem != n_prompts:
        raise ValueError(f"{n_mem} objects in memory but {n_prompts} prompts")
    n = n_mem if n_mem is not None else n_prompts
    assert n is not None
    if n == 0:
        raise ValueError("track_step needs at least one object")
    return n
