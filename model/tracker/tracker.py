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
    MaskDecoder,
    resize_logits,
    select_masks,
    upcast,
    working_dtype,
)
from model.tracker.memory_attention import MemoryAttention, memory_tokens
from model.tracker.memory_bank import MemoryBatch, MemoryView
from model.tracker.memory_encoder import MemoryEncoder
from model.tracker.memory_kv import StoredMemory, assemble, gather, slot_keys
from model.tracker.object_pointer import pointer_positions
from model.tracker.prompt_encoder import PromptEncoder
from model.tracker.prompt_groups import (
    decode_grouped,
    flags,
    mask_prompts,
    num_objects,
    use_multimask,
)
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
                    backend=c.memory_attention_backend,
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
        # derived from weights, not state: (weights' identity and version, slot_keys table)
        self._slot_cache: tuple[tuple[object, ...], torch.Tensor] | None = None
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

        A batch from `stack_views` (it carries the banks' views) without prompts takes the
        steady path: cached memory projections (`propagate`), unless
        `TrackerConfig.cache_memory_kv` is off. Both paths give the same outputs.
        """
        n = num_objects(memory, prompts)
        if (
            (prompts is None or all(p is None for p in prompts))
            and memory is not None
            and memory.views is not None
            and self.config.cache_memory_kv
        ):
            stored = self.stored_memory(memory.views)
            step = self.propagate(features, stored)
            if stored.valid.shape[0] != n:  # bucket padding rows
                step = TrackStepOutput(
                    step.low_res_masks[:n],
                    None,
                    step.iou_scores[:n],
                    step.object_score_logits[:n],
                    step.obj_ptr[:n],
                )
            return self._with_high_res(step, high_res)
        prompts = list(prompts) if prompts is not None else [None] * n
        feats = features.expand(n)
        device = feats.pix.device
        mask_rows = flags([p is not None and p.mask is not None for p in prompts], device)

        # 1. condition each object's features on its memories
        conditioned = self._condition(feats, memory, mask_rows)  # N x C x g x g

        # 2. prompt encoding: dense mask embeddings for mask prompts, point tokens otherwise
        masks_16g = mask_prompts(
            prompts, self.config.memory_mask_size, self.no_obj_ptr
        )  # index -> 1 x 1 x 16g x 16g
        dense = self.sam_prompt_encoder.no_mask_dense(n).to(conditioned.dtype)
        if masks_16g:
            rows = torch.tensor(list(masks_16g), device=dense.device)
            mask_prompt = self.mask_downsample(torch.cat(list(masks_16g.values())).to(dense.dtype))
            dense = dense.index_copy(0, rows, self.sam_prompt_encoder.embed_masks(mask_prompt))

        # 3. SAM mask decoder (one call per distinct number of point tokens); 4. absent objects
        multimask = flags([use_multimask(self.config, p) for p in prompts], device)
        step = self._decode_and_choose(feats, conditioned, dense, prompts, multimask)
        low_res, ious, scores, obj_ptr = (
            step.low_res_masks,
            step.iou_scores,
            step.object_score_logits,
            step.obj_ptr,
        )

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
        step = TrackStepOutput(low_res, None, ious, scores, obj_ptr)
        step = self._with_high_res(step, high_res)
        if high_res_prompt is not None and step.high_res_masks is not None:
            rows = torch.tensor(list(masks_16g), device=low_res.device)
            prompt_hr = resize_logits(high_res_prompt, self.config.image_size, antialias=True)
            step = step._replace(high_res_masks=step.high_res_masks.index_copy(0, rows, prompt_hr))
        return step

    def propagate(self, features: TrackerFeatures, memory: StoredMemory) -> TrackStepOutput:
        """The steady tracker step: B objects, no prompts, memories from `stored_memory`.

        Tensors in, tensors out: no host sync, no data-dependent Python branch, shapes fixed
        by `memory` (torch.compile(fullgraph=True) and CUDA graphs capture it whole). Rows
        without any valid memory (bucket padding) take features + no_mem_embed.
        """
        c = self.config
        b = memory.valid.shape[0]
        feats = features.expand(b)
        kv = assemble(
            self.memory_attention,
            memory,
            pointer_positions(
                self.obj_ptr_tpos_proj, memory.pointer_distances, c.max_obj_ptrs_in_encoder
            ),
        )
        attended = self.memory_attention(feats.pix, feats.pix_pos, kv)
        has_memory = memory.valid.any(dim=1) | memory.pointer_valid.any(dim=1)
        plain = feats.pix + self.no_mem_embed.reshape(1, -1, 1, 1)
        conditioned = torch.where(has_memory[:, None, None, None], attended.to(plain.dtype), plain)
        dense = self.sam_prompt_encoder.no_mask_dense(b).to(conditioned.dtype)
        multimask = torch.full((b,), use_multimask(self.config, None), device=conditioned.device)
        return self._decode_and_choose(feats, conditioned, dense, [None] * b, multimask)

    def stored_memory(self, views: Sequence[MemoryView]) -> StoredMemory:
        """The views' memories as `propagate` reads them: cached projections (projected on
        first read), the slot table, padded per `TrackerConfig.static_shapes`."""
        return gather(
            self.memory_attention, views, self._slot_table(), static=self.config.static_shapes
        )

    def _slot_table(self) -> torch.Tensor:
        """`slot_keys` of the current weights, rebuilt only when they change (load, .to())."""
        attn = self.memory_attention
        params: list[torch.Tensor] = [self.maskmem_tpos_enc]
        for layer in attn.cross_layers():
            proj = layer.cross_attn_image
            params += [proj.k_proj.weight, proj.k_proj.bias]
        key = tuple((id(p), p._version, p.dtype, p.device) for p in params)
        if self._slot_cache is None or self._slot_cache[0] != key:
            c, g = self.config, self.config.grid_size
            tpos = self.maskmem_tpos_enc.reshape(c.num_maskmem, c.mem_dim)
            with torch.no_grad():
                self._slot_cache = (key, slot_keys(attn, tpos, g, g))
        return self._slot_cache[1]

    def _with_high_res(self, step: TrackStepOutput, high_res: bool) -> TrackStepOutput:
        if not high_res:
            return step
        high = resize_logits(step.low_res_masks, self.config.image_size, antialias=False)
        return step._replace(high_res_masks=high)

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
        + no_mem_embed for those without, the raw features for mask prompts. Every row runs the
        attention and `torch.where` picks (no host sync to find the rows with memories)."""
        pix = feats.pix
        no_mem = self.no_mem_embed.reshape(1, -1, 1, 1)
        conditioned = torch.where(mask_rows[:, None, None, None], pix, pix + no_mem)
        if memory is None:
            return conditioned
        has_memory = (memory.valid.any(dim=1) | memory.pointer_valid.any(dim=1)) & ~mask_rows
        c = self.config
        keys = memory_tokens(
            memory,
            tpos_enc=self.maskmem_tpos_enc.reshape(c.num_maskmem, c.mem_dim),
            pointer_pos=pointer_positions(  # N x P x mem_dim
                self.obj_ptr_tpos_proj, memory.pointer_distances, c.max_obj_ptrs_in_encoder
            ),
            dtype=pix.dtype,
        )
        attended = self.memory_attention(pix, feats.pix_pos, keys).to(conditioned.dtype)
        return torch.where(has_memory[:, None, None, None], attended, conditioned)

    def _decode_and_choose(
        self,
        feats: TrackerFeatures,
        conditioned: torch.Tensor,
        dense: torch.Tensor,
        prompts: list[ObjectPrompt | None],
        multimask: torch.Tensor,
    ) -> TrackStepOutput:
        """Mask decoder, the official mask choice, and absent objects (placeholder mask,
        no-object pointer): low-res masks, IoUs, object scores, pointers (no high-res yet)."""
        decoded = decode_grouped(
            self.sam_prompt_encoder, self.sam_mask_decoder, feats, conditioned, dense, prompts
        )
        c = self.config
        chosen = select_masks(
            decoded,
            multimask,
            dynamic_stability=c.dynamic_multimask_via_stability,
            stability_delta=c.dynamic_multimask_stability_delta,
            stability_thresh=c.dynamic_multimask_stability_thresh,
        )
        scores = decoded.object_score_logits  # N x 1
        appearing = scores > 0
        low_res = torch.where(appearing[:, :, None, None], upcast(chosen.masks), NO_OBJ_SCORE)
        obj_ptr = torch.where(appearing, self.obj_ptr_proj(chosen.tokens), self.no_obj_ptr)
        return TrackStepOutput(low_res, None, chosen.ious, scores, obj_ptr)
