"""Hyperparameters: frozen dataclass configs and one registry, `CONFIGS`.

Defaults are the official SAM 3 values (Meta's `sam3` model builder; docs/model.md); `tiny` keeps the
architecture and shrinks every dimension so a frame runs in milliseconds on a CPU.

Sections are owned by the module they configure; each sub-config is built from keyword
arguments only and composed into `Sam3Config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# --- backbone: ViT trunk, necks, text encoder ------------------------------------------------


@dataclass(frozen=True)
class VitConfig:
    """PE ViT-L/14 trunk: windowed + global blocks, 2-D axial RoPE, tiled absolute position."""

    image_size: int = 1008  # square input; the trunk sees (image_size / patch_size)^2 tokens
    patch_size: int = 14
    width: int = 1024
    depth: int = 32
    num_heads: int = 16
    mlp_dim: int = 4736  # mlp_ratio 4.625
    window_size: int = 24  # tokens per window side in the non-global blocks
    global_blocks: tuple[int, ...] = (7, 15, 23, 31)
    pretrain_image_size: int = 336  # abs-pos grid = 24 x 24 (+1 unused cls slot), tiled
    rope_theta: float = 10000.0
    layer_norm_eps: float = 1e-5

    @property
    def grid_size(self) -> int:
        """Tokens per side of the patch grid (72 at 1008 px)."""
        return self.image_size // self.patch_size

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads


@dataclass(frozen=True)
class NeckConfig:
    """SimpleFPN necks on the last ViT map: `convs` feed the detector, `sam2_convs` the tracker."""

    d_model: int = 256  # channels of every FPN level (= detector and tracker width)
    scale_factors: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)
    scalp: int = 1  # drop this many lowest-resolution levels: 3 levels at 4x, 2x, 1x the grid
    tracker_neck: bool = True  # build `sam2_convs` (the tracker's separately weighted copy)

    @property
    def num_levels(self) -> int:
        return len(self.scale_factors) - self.scalp


@dataclass(frozen=True)
class TextConfig:
    """CLIP-style causal text transformer plus the `resizer` to the detector width."""

    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_dim: int = 4096
    context_length: int = 32
    vocab_size: int = 49408
    projection_dim: int = 512  # `text_projection`: in the checkpoint, unused at inference
    out_dim: int = 256  # resizer output (= NeckConfig.d_model)
    layer_norm_eps: float = 1e-5


# --- detector heads: geometry encoder, fusion encoder, decoder, scoring, segmentation ----------


@dataclass(frozen=True)
class DetectorConfig:
    """Geometry encoder, fusion encoder, DETR decoder, dot-product scoring, segmentation head.

    Every head works at `d_model`, which must equal the neck's `d_model` (no projections between).
    """

    d_model: int = 256
    num_heads: int = 8  # every attention of the heads; also the box-RPB bias channels
    ffn_dim: int = 2048  # FFN of every encoder/decoder layer and of the scoring prompt MLP
    geometry_layers: int = 3  # exemplar (box / point) encoder
    fusion_layers: int = 6  # image x prompt fusion encoder
    decoder_layers: int = 6
    num_queries: int = 200
    roi_size: int = 7  # ROI-align output side for exemplar boxes
    upsampling_stages: int = 3  # pixel-decoder convs in the checkpoint (levels - 1 are used)
    score_clamp: float = 12.0  # dot-product logits are clamped to +-this
    layer_norm_eps: float = 1e-5


# --- tracker: SAM heads, memory encoder, memory attention, memory bank -------------------------


@dataclass(frozen=True)
class TrackerConfig:
    """SAM 2-style tracker (`tracker.*` keys): SAM prompt encoder and mask decoder, memory encoder,
    memory attention, object pointers. Official `build_tracker` values (reference §1a "Tracker").

    `d_model` must equal `NeckConfig.d_model` and `image_size` / `backbone_stride` the ViT's
    image and patch size: the tracker reads the `sam2_convs` maps at 4x, 2x and 1x the grid.
    """

    d_model: int = 256  # SAM heads and memory attention width
    image_size: int = 1008
    backbone_stride: int = 14  # grid = image_size / stride = 72; low-res masks 4x that (288)
    mem_dim: int = 64  # memory encoder output; object pointers split into d_model / mem_dim tokens
    num_maskmem: int = 7  # temporal slots: 1 for conditioning frames + 6 recent frames
    max_obj_ptrs_in_encoder: int = 16  # pointer temporal encoding divides distances by this - 1
    # SAM prompt encoder and mask decoder
    mask_in_chans: int = 16
    num_multimask_outputs: int = 3
    decoder_depth: int = 2  # two-way transformer blocks
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    decoder_attention_downsample: int = 2  # token <-> image attention runs at d_model / 2
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    dynamic_multimask_via_stability: bool = True  # single-mask output falls back to the best
    dynamic_multimask_stability_delta: float = 0.05  # ... multimask when its stability score
    dynamic_multimask_stability_thresh: float = 0.98  # ... is below this
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True  # also on frames without prompts
    multimask_min_pt_num: int = 0  # multimask only for 0..1 clicks (a box counts as 2)
    multimask_max_pt_num: int = 1
    # memory attention (tracker.transformer.encoder)
    memory_layers: int = 4
    memory_heads: int = 1
    memory_mlp_dim: int = 2048
    rope_theta: float = 10000.0
    memory_input_pos_scale: float = 0.1  # query = feature + 0.1 * sine position
    # ours, speed only (docs/tracker.md "Cost"); none changes the outputs beyond float rounding
    cache_memory_kv: bool = True  # project each memory's keys / values once, not every frame
    # pad objects to a power-of-two bucket and memories to the banks' fixed slot counts, so a
    # steady step has the same shapes every frame (torch.compile, CUDA graphs); costs the
    # padded rows' compute in eager, hence off by default
    static_shapes: bool = False
    # kernel of the memory cross-attention: auto | math | flash | efficient | cudnn | sdpa_math
    # (model/tracker/attention_backend.py); auto = PyTorch's choice
    memory_attention_backend: str = "auto"
    # memory encoder (tracker.maskmem_backbone)
    fuser_layers: int = 2  # ConvNeXt blocks
    fuser_kernel_size: int = 7
    fuser_mlp_dim: int = 1024
    fuser_layer_scale_init: float = 1e-6
    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2  # 4 stride-2 convs: 16x down, 1 -> 4 -> 16 -> 64 -> 256 channels
    downsampler_total_stride: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0  # mask probabilities enter memory as p * 20 - 10
    sigmoid_bias_for_mem_enc: float = -10.0

    @property
    def grid_size(self) -> int:
        """Feature grid side of the lowest tracker level (72 at 1008 px)."""
        return self.image_size // self.backbone_stride

    @property
    def low_res_size(self) -> int:
        """Side of the mask decoder's output masks (288 at 1008 px)."""
        return 4 * self.grid_size

    @property
    def memory_mask_size(self) -> int:
        """Side at which masks enter the memory encoder (1152 at 1008 px)."""
        return self.downsampler_total_stride * self.grid_size


# --- the online video loop: association, hot-start, re-conditioning thresholds ----------------


@dataclass(frozen=True)
class VideoConfig:
    """Thresholds of the online loop (model/video/); defaults are the official
    `build_sam3_video_model` values (reference §1a "Video wrapper defaults", §1c)."""

    # detection and association (mask IoU on the tracker's low-res mask grid)
    score_threshold_detection: float = 0.5  # keep detections with prob > this
    det_nms_thresh: float = (
        0.1  # mask NMS: drop a detection with IoU > this to a better one; 0 = off
    )
    assoc_iou_thresh: float = 0.1  # detection "matches" a track (and spawns nothing) at IoU >= this
    trk_assoc_iou_thresh: float = 0.5  # a track counts as matched at IoU >= this
    new_det_thresh: float = (
        0.7  # spawn a new object only from an unmatched detection with prob >= this
    )
    max_num_objects: int = (
        10_000  # live objects per stream; extra new detections keep the best scores
    )
    # hot-start: new objects may be removed within their first `hotstart_delay` frames
    hotstart_delay: int = 15
    hotstart_unmatch_thresh: int = 8  # ... after this many unmatched frames
    hotstart_dup_thresh: int = 8  # ... or this many frames sharing a detection with an older object
    # ours, 0 = off (official): an unmatched frame does not count while at least this fraction of
    # the object's last visible mask lies under other objects of its concept (it is hidden behind
    # or swallowed by a look-alike, which says nothing about it being a false positive)
    hotstart_hidden_cover: float = 0.0
    # ours, 0 = off (official): an object removed as unmatched keeps its ID this many frames, and
    # a would-be new detection near where it should be (re-anchoring's reach) brings it back
    hotstart_revive_frames: int = 0
    confirm_delay: int = 0  # frames before a new object is published (0: at once, as tentative)
    # periodic re-conditioning from confident detections
    recondition_every_nth_frame: int = 16  # 0 = off
    high_conf_thresh: float = (
        0.8  # detection prob >=, and tracker object-score logit > (official quirk)
    )
    high_iou_thresh: float = 0.8  # detection <-> track mask IoU >=
    recondition_on_trk_masks: bool = False  # False (official): re-prompt with the detection mask
    # True (official `add_new_mask`): the re-conditioning mask is a prompt, and the memory and
    # object pointer come from it; False (ours): the mask is encoded as the frame's memory and
    # the propagated pointer is kept
    recondition_reprompt: bool = True
    # re-anchoring (ours, off in the official loop; model/video/reassociation.py): an object that no
    # detection has matched for this many frames (its mask drifted off, swelled or vanished) takes
    # over a detection of its concept near where it should be now, instead of a new ID
    reanchor_after: int = 0  # frames; 0 = off
    reanchor_reach: float = (
        1.0  # box-centre distance, in object sizes, one frame after the last match
    )
    reanchor_reach_per_frame: float = 0.25  # ... and this much more per further frame
    reanchor_reach_max: float = 3.0  # ... up to this: a long-lost object claims no far look-alike
    # ours, 0 = off: two look-alikes whose tracks traded objects as they crossed (each matched
    # detection fits the other's motion, summed distances down by this many object sizes and
    # by half) trade their memories back, keeping their IDs (needs re-anchoring)
    untangle_margin: float = 0.0
    # overlaps between objects of one concept
    suppress_overlap_occlusion_thresh: float = (
        0.7  # IoU >= this: suppress the most recently occluded; 0 = off
    )
    shrink_suppress_thresh: float = (
        0.3  # memory non-overlap: suppress a mask keeping < 30 % of its area
    )
    # ours, False = official: then each contested pixel is also left only to the object with the
    # highest logit in the memories (SAM 2's non_overlap_masks_for_mem_enc), so a track that
    # swelled over a look-alike does not remember the look-alike as itself
    memory_non_overlap: bool = False
    fill_hole_area: int = (
        16  # holes / sprinkles up to this many low-res pixels are cleaned; 0 = off
    )
    # per-object memory bank (model/tracker/memory_bank.py): fixed caps, nothing grows with the stream;
    # recent memories and pointers are capped by TrackerConfig.num_maskmem / max_obj_ptrs_in_encoder
    max_cond_frames: int = 4  # conditioning memories (spawn, refinements, re-conditionings)
    use_memory_selection: bool = (
        True  # official SAM2Long-style filter; False = plain t-1 .. t-6 (HF)
    )
    memory_selection_threshold: float = 0.01  # keep frames with eff_iou_score > this
    clear_memory_around_condition: bool = (
        True  # a new conditioning frame drops older recent memories
    )
    memory_bf16: bool = True  # store memories in bfloat16 (official; half the memory per object)
    # on CUDA: the detector pass runs on a side stream beside propagation (model/video/streams.py)
    cuda_overlap: bool = True
    # time: objects unseen for longer than this end with reason `lost` (also across `mark_gap`)
    gap_tolerance_s: float = 5.0
    nominal_fps: float = 30.0  # stream clock advance per frame when pts carry no time


# --- the whole model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sam3Config:
    name: str = "sam3"
    vit: VitConfig = field(default_factory=VitConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    text: TextConfig = field(default_factory=TextConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    video: VideoConfig = field(default_factory=VideoConfig)


def _tiny() -> Sam3Config:
    """Same architecture, small dimensions: a frame in milliseconds on 2 CPU cores (tests, parity)."""
    return Sam3Config(
        name="tiny",
        vit=replace(
            VitConfig(),
            image_size=112,  # 8 x 8 tokens, four 4 x 4 windows
            width=32,
            depth=2,
            num_heads=2,  # head_dim 16: divisible by 4 for 2-D axial RoPE
            mlp_dim=64,
            window_size=4,
            global_blocks=(1,),
            pretrain_image_size=56,  # 4 x 4 abs-pos grid, tiled to 8 x 8
        ),
        # 128: the HF tracker needs a multiple of 64 above 64 for tracker parity tests.
        neck=replace(NeckConfig(), d_model=128),
        text=replace(
            TextConfig(),
            width=32,
            depth=2,
            num_heads=2,
            mlp_dim=64,
            vocab_size=1024,
            projection_dim=32,
            out_dim=128,
        ),
        detector=replace(
            DetectorConfig(),
            d_model=128,  # = neck.d_model
            num_heads=4,
            ffn_dim=128,
            geometry_layers=1,
            fusion_layers=2,
            decoder_layers=2,
            num_queries=16,
        ),
        tracker=replace(
            TrackerConfig(),
            d_model=128,  # = neck d_model; HF needs a multiple of 64 above 64 (pointer split)
            image_size=112,
            decoder_heads=2,
            decoder_mlp_dim=64,
            iou_head_hidden_dim=128,
            memory_layers=2,
            memory_mlp_dim=64,
            fuser_mlp_dim=64,
        ),
        video=replace(VideoConfig()),
    )


def _embedded() -> Sam3Config:
    """The default model shipped in `model/assets`: the SAM 3 architecture at ~3 M parameters.

    Trained on the generated concept world (model/embedded; docs/embedded-model.md).
    128 x 128 input with 8-px patches (16 x 16 tokens), FPN levels 64 / 32 / 16, masks at 64 x 64;
    every head at width 64. The text vocabulary is a small BPE over the world's words.
    """
    return Sam3Config(
        name="embedded",
        vit=replace(
            VitConfig(),
            image_size=128,
            patch_size=8,  # 16 x 16 tokens
            width=128,
            depth=6,
            num_heads=4,  # head_dim 32
            mlp_dim=512,
            window_size=8,  # four 8 x 8 windows in the non-global blocks
            global_blocks=(2, 5),
            pretrain_image_size=64,  # 8 x 8 abs-pos grid, tiled to 16 x 16
        ),
        neck=replace(NeckConfig(), d_model=64),
        text=replace(
            TextConfig(),
            width=128,
            depth=2,
            num_heads=4,
            mlp_dim=512,
            context_length=8,  # SOT + up to 4 words + EOT, with room to spare
            vocab_size=580,  # 512 byte symbols + merges for the world's words + SOT/EOT
            projection_dim=64,
            out_dim=64,
        ),
        detector=replace(
            DetectorConfig(),
            d_model=64,
            num_heads=2,
            ffn_dim=256,
            geometry_layers=1,
            fusion_layers=2,
            decoder_layers=3,
            num_queries=24,
        ),
        tracker=replace(
            TrackerConfig(),
            d_model=64,
            image_size=128,
            backbone_stride=8,
            mem_dim=32,  # object pointers split into 2 tokens
            decoder_heads=2,
            decoder_mlp_dim=256,
            iou_head_hidden_dim=64,
            memory_layers=2,
            memory_mlp_dim=256,
            fuser_mlp_dim=128,
        ),
        # The shipped weights run at SAM 3's own operating point (VideoConfig's thresholds). Each
        # rule below is on because the small model needs it; the measurements that chose them
        # are in docs/embedded-model.md ("Operating point" and "Tracking").
        video=replace(
            VideoConfig(),
            reanchor_after=1,  # its small tracker drifts onto look-alikes
            # its detector misses real objects for frames at a time: with the official 8
            # unmatched frames they were removed as false positives and came back under new IDs
            hotstart_unmatch_thresh=10,
            # a small ring swallowed by a touching look-alike's track was removed as a false
            # positive and came back under a new ID
            hotstart_hidden_cover=0.5,
            # re-prompting re-conditioned objects made more ID switches: its prompted pointers
            # are weaker than its propagated ones
            recondition_reprompt=False,
            hotstart_revive_frames=15,
            # two touching look-alikes: one track swelled over both and remembered both as itself
            memory_non_overlap=True,
            # look-alikes crossing: each track followed the other object out of it
            untangle_margin=1.0,
        ),
    )


CONFIGS: dict[str, Sam3Config] = {
    "sam3": Sam3Config(),
    "tiny": _tiny(),
    "embedded": _embedded(),
}
