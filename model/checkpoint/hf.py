"""Pure key remap: Hugging Face `transformers` SAM 3 layout -> official `sam3.pt` names.

Covers `Sam3VideoModel` (prefixes `detector_model.`, `tracker_model.`, `tracker_neck.`) and
`Sam3Model` (detector only, no prefix). Tensors HF stores differently are converted here:
split q/k/v projections are concatenated into packed `qkv` / `in_proj_*`, the ViT position table
gets back its (unused) cls row, `text_projection` is transposed, the prompt encoder's stacked
`point_embed` is split into `point_embeddings.{0..3}`, and the duplicated
`shared_image_embedding` copy is dropped. Keys HF does not store at all (the ViT `freqs_cis`
tables, the detector's point-exemplar projections) are listed by `HF_ABSENT_PATTERNS`; the loader
recomputes or fills them. Unknown keys pass through unchanged so the strict loader reports them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

import torch

# Official keys that an HF checkpoint never holds (see sam3-hf-key-mapping.tsv).
HF_ABSENT_PATTERNS = (
    re.compile(r"detector\.backbone\.vision_backbone\.trunk\.blocks\.\d+\.attn\.freqs_cis"),
    re.compile(r"detector\.geometry_encoder\.points_(direct|pool|pos_enc)_project\.(weight|bias)"),
)

_QKV = "(?P<qkv>[qkv])_proj"
_WB = r"(?P<wb>weight|bias)"

# (HF pattern after `_normalise`, official template). First full match wins. A `qkv` group
# marks one third of a packed projection; `{wb}` etc. are filled from the named groups.
# fmt: off
_DETECTOR_RULES: tuple[tuple[str, str], ...] = (
    # ViT trunk
    (r"vision_encoder\.backbone\.embeddings\.position_embeddings", "backbone.vision_backbone.trunk.pos_embed"),
    (r"vision_encoder\.backbone\.embeddings\.patch_embeddings\.projection\.weight", "backbone.vision_backbone.trunk.patch_embed.proj.weight"),
    (rf"vision_encoder\.backbone\.layer_norm\.{_WB}", "backbone.vision_backbone.trunk.ln_pre.{wb}"),
    (rf"vision_encoder\.backbone\.layers\.(?P<n>\d+)\.layer_norm(?P<k>[12])\.{_WB}", "backbone.vision_backbone.trunk.blocks.{n}.norm{k}.{wb}"),
    (rf"vision_encoder\.backbone\.layers\.(?P<n>\d+)\.attention\.{_QKV}\.{_WB}", "backbone.vision_backbone.trunk.blocks.{n}.attn.qkv.{wb}"),
    (rf"vision_encoder\.backbone\.layers\.(?P<n>\d+)\.attention\.o_proj\.{_WB}", "backbone.vision_backbone.trunk.blocks.{n}.attn.proj.{wb}"),
    (rf"vision_encoder\.backbone\.layers\.(?P<n>\d+)\.mlp\.fc(?P<k>[12])\.{_WB}", "backbone.vision_backbone.trunk.blocks.{n}.mlp.fc{k}.{wb}"),
    # detector FPN (scale layers are named by `_fpn_scale_names`)
    (rf"vision_encoder\.neck\.fpn_layers\.(?P<n>\d+)\.proj1\.{_WB}", "backbone.vision_backbone.convs.{n}.conv_1x1.{wb}"),
    (rf"vision_encoder\.neck\.fpn_layers\.(?P<n>\d+)\.proj2\.{_WB}", "backbone.vision_backbone.convs.{n}.conv_3x3.{wb}"),
    (rf"vision_encoder\.neck\.fpn_layers\.(?P<n>\d+)\.(?P<s>dconv_2x2\w*)\.{_WB}", "backbone.vision_backbone.convs.{n}.{s}.{wb}"),
    # text encoder
    (r"text_encoder\.text_model\.embeddings\.token_embedding\.weight", "backbone.language_backbone.encoder.token_embedding.weight"),
    (r"text_encoder\.text_model\.embeddings\.position_embedding\.weight", "backbone.language_backbone.encoder.positional_embedding"),
    (rf"text_encoder\.text_model\.encoder\.layers\.(?P<n>\d+)\.self_attn\.{_QKV}\.{_WB}", "backbone.language_backbone.encoder.transformer.resblocks.{n}.attn.in_proj_{wb}"),
    (rf"text_encoder\.text_model\.encoder\.layers\.(?P<n>\d+)\.self_attn\.out_proj\.{_WB}", "backbone.language_backbone.encoder.transformer.resblocks.{n}.attn.out_proj.{wb}"),
    (rf"text_encoder\.text_model\.encoder\.layers\.(?P<n>\d+)\.layer_norm(?P<k>[12])\.{_WB}", "backbone.language_backbone.encoder.transformer.resblocks.{n}.ln_{k}.{wb}"),
    (rf"text_encoder\.text_model\.encoder\.layers\.(?P<n>\d+)\.mlp\.fc1\.{_WB}", "backbone.language_backbone.encoder.transformer.resblocks.{n}.mlp.c_fc.{wb}"),
    (rf"text_encoder\.text_model\.encoder\.layers\.(?P<n>\d+)\.mlp\.fc2\.{_WB}", "backbone.language_backbone.encoder.transformer.resblocks.{n}.mlp.c_proj.{wb}"),
    (rf"text_encoder\.text_model\.final_layer_norm\.{_WB}", "backbone.language_backbone.encoder.ln_final.{wb}"),
    (r"text_encoder\.text_projection\.weight", "backbone.language_backbone.encoder.text_projection"),
    (rf"text_projection\.{_WB}", "backbone.language_backbone.resizer.{wb}"),
    # geometry / exemplar encoder
    (rf"geometry_encoder\.layers\.(?P<n>\d+)\.self_attn\.{_QKV}\.{_WB}", "geometry_encoder.encode.{n}.self_attn.in_proj_{wb}"),
    (rf"geometry_encoder\.layers\.(?P<n>\d+)\.cross_attn\.{_QKV}\.{_WB}", "geometry_encoder.encode.{n}.cross_attn_image.in_proj_{wb}"),
    (rf"geometry_encoder\.layers\.(?P<n>\d+)\.self_attn\.o_proj\.{_WB}", "geometry_encoder.encode.{n}.self_attn.out_proj.{wb}"),
    (rf"geometry_encoder\.layers\.(?P<n>\d+)\.cross_attn\.o_proj\.{_WB}", "geometry_encoder.encode.{n}.cross_attn_image.out_proj.{wb}"),
    (rf"geometry_encoder\.layers\.(?P<n>\d+)\.mlp\.fc(?P<k>[12])\.{_WB}", "geometry_encoder.encode.{n}.linear{k}.{wb}"),
    (rf"geometry_encoder\.layers\.(?P<n>\d+)\.layer_norm(?P<k>[123])\.{_WB}", "geometry_encoder.encode.{n}.norm{k}.{wb}"),
    (rf"geometry_encoder\.vision_layer_norm\.{_WB}", "geometry_encoder.img_pre_norm.{wb}"),
    (rf"geometry_encoder\.prompt_layer_norm\.{_WB}", "geometry_encoder.norm.{wb}"),
    (rf"geometry_encoder\.output_layer_norm\.{_WB}", "geometry_encoder.encode_norm.{wb}"),
    (rf"geometry_encoder\.(?P<m>label_embed|cls_embed|boxes_direct_project|boxes_pool_project|boxes_pos_enc_project|final_proj)\.{_WB}", "geometry_encoder.{m}.{wb}"),
    # fusion encoder
    (rf"detr_encoder\.layers\.(?P<n>\d+)\.self_attn\.{_QKV}\.{_WB}", "transformer.encoder.layers.{n}.self_attn.in_proj_{wb}"),
    (rf"detr_encoder\.layers\.(?P<n>\d+)\.cross_attn\.{_QKV}\.{_WB}", "transformer.encoder.layers.{n}.cross_attn_image.in_proj_{wb}"),
    (rf"detr_encoder\.layers\.(?P<n>\d+)\.self_attn\.o_proj\.{_WB}", "transformer.encoder.layers.{n}.self_attn.out_proj.{wb}"),
    (rf"detr_encoder\.layers\.(?P<n>\d+)\.cross_attn\.o_proj\.{_WB}", "transformer.encoder.layers.{n}.cross_attn_image.out_proj.{wb}"),
    (rf"detr_encoder\.layers\.(?P<n>\d+)\.mlp\.fc(?P<k>[12])\.{_WB}", "transformer.encoder.layers.{n}.linear{k}.{wb}"),
    (rf"detr_encoder\.layers\.(?P<n>\d+)\.layer_norm(?P<k>[123])\.{_WB}", "transformer.encoder.layers.{n}.norm{k}.{wb}"),
    # DETR decoder
    (r"detr_decoder\.(?P<m>query_embed|reference_points|presence_token)\.weight", "transformer.decoder.{m}.weight"),
    (rf"detr_decoder\.presence_head\.layers\.(?P<n>\d+)\.{_WB}", "transformer.decoder.presence_token_head.layers.{n}.{wb}"),
    (rf"detr_decoder\.presence_layer_norm\.{_WB}", "transformer.decoder.presence_token_out_norm.{wb}"),
    (rf"detr_decoder\.output_layer_norm\.{_WB}", "transformer.decoder.norm.{wb}"),
    (rf"detr_decoder\.box_head\.layers\.(?P<n>\d+)\.{_WB}", "transformer.decoder.bbox_embed.layers.{n}.{wb}"),
    (rf"detr_decoder\.ref_point_head\.layers\.(?P<n>\d+)\.{_WB}", "transformer.decoder.ref_point_head.layers.{n}.{wb}"),
    (rf"detr_decoder\.box_rpb_embed_(?P<a>[xy])\.layers\.(?P<n>\d+)\.{_WB}", "transformer.decoder.boxRPB_embed_{a}.layers.{n}.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.self_attn\.{_QKV}\.{_WB}", "transformer.decoder.layers.{n}.self_attn.in_proj_{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.text_cross_attn\.{_QKV}\.{_WB}", "transformer.decoder.layers.{n}.ca_text.in_proj_{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.vision_cross_attn\.{_QKV}\.{_WB}", "transformer.decoder.layers.{n}.cross_attn.in_proj_{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.self_attn\.o_proj\.{_WB}", "transformer.decoder.layers.{n}.self_attn.out_proj.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.text_cross_attn\.o_proj\.{_WB}", "transformer.decoder.layers.{n}.ca_text.out_proj.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.vision_cross_attn\.o_proj\.{_WB}", "transformer.decoder.layers.{n}.cross_attn.out_proj.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.vision_cross_attn_layer_norm\.{_WB}", "transformer.decoder.layers.{n}.norm1.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.text_cross_attn_layer_norm\.{_WB}", "transformer.decoder.layers.{n}.catext_norm.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.self_attn_layer_norm\.{_WB}", "transformer.decoder.layers.{n}.norm2.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.mlp_layer_norm\.{_WB}", "transformer.decoder.layers.{n}.norm3.{wb}"),
    (rf"detr_decoder\.layers\.(?P<n>\d+)\.mlp\.fc(?P<k>[12])\.{_WB}", "transformer.decoder.layers.{n}.linear{k}.{wb}"),
    # dot-product scoring
    (rf"dot_product_scoring\.text_mlp\.layers\.(?P<n>\d+)\.{_WB}", "dot_prod_scoring.prompt_mlp.layers.{n}.{wb}"),
    (rf"dot_product_scoring\.text_mlp_out_norm\.{_WB}", "dot_prod_scoring.prompt_mlp.out_norm.{wb}"),
    (rf"dot_product_scoring\.text_proj\.{_WB}", "dot_prod_scoring.prompt_proj.{wb}"),
    (rf"dot_product_scoring\.query_proj\.{_WB}", "dot_prod_scoring.hs_proj.{wb}"),
    # segmentation head
    (rf"mask_decoder\.pixel_decoder\.(?P<m>conv_layers|norms)\.(?P<n>\d+)\.{_WB}", "segmentation_head.pixel_decoder.{m}.{n}.{wb}"),
    (rf"mask_decoder\.mask_embedder\.layers\.(?P<n>\d+)\.{_WB}", "segmentation_head.mask_predictor.mask_embed.layers.{n}.{wb}"),
    (rf"mask_decoder\.instance_projection\.{_WB}", "segmentation_head.instance_seg_head.{wb}"),
    (rf"mask_decoder\.semantic_projection\.{_WB}", "segmentation_head.semantic_seg_head.{wb}"),
    (rf"mask_decoder\.prompt_cross_attn\.{_QKV}\.{_WB}", "segmentation_head.cross_attend_prompt.in_proj_{wb}"),
    (rf"mask_decoder\.prompt_cross_attn\.o_proj\.{_WB}", "segmentation_head.cross_attend_prompt.out_proj.{wb}"),
    (rf"mask_decoder\.prompt_cross_attn_norm\.{_WB}", "segmentation_head.cross_attn_norm.{wb}"),
)

_TRACKER_RULES: tuple[tuple[str, str], ...] = (
    # SAM prompt encoder (`point_embed` is split by `_split_point_embed`)
    (r"prompt_encoder\.shared_embedding\.positional_embedding", "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"),
    (r"prompt_encoder\.(?P<m>no_mask_embed|not_a_point_embed)\.weight", "sam_prompt_encoder.{m}.weight"),
    (rf"prompt_encoder\.mask_embed\.(?P<n>\d+)\.{_WB}", "sam_prompt_encoder.mask_downscaling.{n}.{wb}"),
    # SAM mask decoder
    (rf"mask_decoder\.output_upscaling\.(?P<n>\d+)\.{_WB}", "sam_mask_decoder.output_upscaling.{n}.{wb}"),
    (r"mask_decoder\.(?P<m>iou_token|mask_tokens|obj_score_token)\.weight", "sam_mask_decoder.{m}.weight"),
    (rf"mask_decoder\.(?P<m>conv_s0|conv_s1)\.{_WB}", "sam_mask_decoder.{m}.{wb}"),
    (rf"mask_decoder\.(?P<m>iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+)\.layers\.(?P<n>\d+)\.{_WB}", "sam_mask_decoder.{m}.layers.{n}.{wb}"),
    (rf"mask_decoder\.transformer\.layers\.(?P<n>\d+)\.mlp\.layers\.0\.{_WB}", "sam_mask_decoder.transformer.layers.{n}.mlp.lin1.{wb}"),
    (rf"mask_decoder\.transformer\.layers\.(?P<n>\d+)\.mlp\.layers\.1\.{_WB}", "sam_mask_decoder.transformer.layers.{n}.mlp.lin2.{wb}"),
    (rf"mask_decoder\.transformer\.layers\.(?P<n>\d+)\.layer_norm(?P<k>[1234])\.{_WB}", "sam_mask_decoder.transformer.layers.{n}.norm{k}.{wb}"),
    (rf"mask_decoder\.transformer\.(?P<a>layers\.\d+\.\w+|final_attn_token_to_image)\.{_QKV}\.{_WB}", "sam_mask_decoder.transformer.{a}.{qkv}_proj.{wb}"),
    (rf"mask_decoder\.transformer\.(?P<a>layers\.\d+\.\w+|final_attn_token_to_image)\.o_proj\.{_WB}", "sam_mask_decoder.transformer.{a}.out_proj.{wb}"),
    (rf"mask_decoder\.transformer\.layer_norm_final_attn\.{_WB}", "sam_mask_decoder.transformer.norm_final_attn.{wb}"),
    # memory attention
    (rf"memory_attention\.layers\.(?P<n>\d+)\.(?P<a>self_attn|cross_attn_image)\.{_QKV}\.{_WB}", "transformer.encoder.layers.{n}.{a}.{qkv}_proj.{wb}"),
    (rf"memory_attention\.layers\.(?P<n>\d+)\.(?P<a>self_attn|cross_attn_image)\.o_proj\.{_WB}", "transformer.encoder.layers.{n}.{a}.out_proj.{wb}"),
    (rf"memory_attention\.layers\.(?P<n>\d+)\.layer_norm(?P<k>[123])\.{_WB}", "transformer.encoder.layers.{n}.norm{k}.{wb}"),
    (rf"memory_attention\.layers\.(?P<n>\d+)\.linear(?P<k>[12])\.{_WB}", "transformer.encoder.layers.{n}.linear{k}.{wb}"),
    (rf"memory_attention\.layer_norm\.{_WB}", "transformer.encoder.norm.{wb}"),
    # memory encoder (mask downsampler indices are fixed by `_downsampler_index`)
    (rf"memory_encoder\.mask_downsampler\.encoder\.(?P<n>\d+)\.{_WB}", "maskmem_backbone.mask_downsampler.encoder.{n}.{wb}"),
    (rf"memory_encoder\.feature_projection\.{_WB}", "maskmem_backbone.pix_feat_proj.{wb}"),
    (rf"memory_encoder\.projection\.{_WB}", "maskmem_backbone.out_proj.{wb}"),
    (rf"memory_encoder\.memory_fuser\.layers\.(?P<n>\d+)\.depthwise_conv\.{_WB}", "maskmem_backbone.fuser.layers.{n}.dwconv.{wb}"),
    (rf"memory_encoder\.memory_fuser\.layers\.(?P<n>\d+)\.pointwise_conv(?P<k>[12])\.{_WB}", "maskmem_backbone.fuser.layers.{n}.pwconv{k}.{wb}"),
    (rf"memory_encoder\.memory_fuser\.layers\.(?P<n>\d+)\.layer_norm\.{_WB}", "maskmem_backbone.fuser.layers.{n}.norm.{wb}"),
    (r"memory_encoder\.memory_fuser\.layers\.(?P<n>\d+)\.scale", "maskmem_backbone.fuser.layers.{n}.gamma"),
    # tracker top level
    (rf"object_pointer_proj\.layers\.(?P<n>\d+)\.{_WB}", "obj_ptr_proj.layers.{n}.{wb}"),
    (rf"temporal_positional_encoding_projection_layer\.{_WB}", "obj_ptr_tpos_proj.{wb}"),
    (rf"mask_downsample\.{_WB}", "mask_downsample.{wb}"),
    (r"memory_temporal_positional_encoding", "maskmem_tpos_enc"),
    (r"no_memory_embedding", "no_mem_embed"),
    (r"no_memory_positional_encoding", "no_mem_pos_enc"),
    (r"occlusion_spatial_embedding_parameter", "no_obj_embed_spatial"),
    (r"no_object_pointer", "no_obj_ptr"),
)
# fmt: on

_SEQUENTIAL_NAMES = {  # HF named sub-modules of official nn.Sequential stacks -> their index
    "conv1": "0", "layer_norm1": "1", "conv2": "3", "layer_norm2": "4", "conv3": "6",
    "upscale_conv1": "0", "upscale_layer_norm": "1", "upscale_conv2": "3",
}  # fmt: skip

_COMPILED = {
    "detector.": [(re.compile(p), t) for p, t in _DETECTOR_RULES],
    "tracker.": [(re.compile(p), t) for p, t in _TRACKER_RULES],
}


def is_hf_layout(keys: Mapping[str, object]) -> bool:
    """True for HF `Sam3VideoModel` / `Sam3Model` state dicts (vs official `detector.`/`tracker.`)."""
    return any(
        k.startswith(
            (
                "detector_model.",
                "tracker_model.",
                "tracker_neck.",
                "vision_encoder.",
                "detr_decoder.",
            )
        )
        for k in keys
    )


def remap_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF state dict -> official-named state dict. Pure: inputs are not modified."""
    raw_keys = frozenset(state)
    out: dict[str, torch.Tensor] = {}
    packed: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    for raw_key, tensor in state.items():
        hf_key = _normalise(raw_key, raw_keys)
        if hf_key == "tracker.shared_image_embedding.positional_embedding":
            continue  # HF's second copy of the prompt encoder's Gaussian matrix
        if hf_key == "tracker.prompt_encoder.point_embed.weight":
            for i, row in enumerate(torch.split(tensor, 1, dim=0)):  # 4 x C -> 4 of 1 x C
                out[f"tracker.sam_prompt_encoder.point_embeddings.{i}.weight"] = row
            continue
        official, part = _rename(hf_key)
        if part is None:
            out[official] = _convert(official, tensor)
        else:
            packed[official][part] = tensor
    for official, parts in packed.items():
        if set(parts) != {"q", "k", "v"}:  # surfaces as an unexpected key in the strict loader
            out[f"{official} (only {'/'.join(sorted(parts))} of q/k/v)"] = next(
                iter(parts.values())
            )
            continue
        out[official] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _normalise(key: str, raw_keys: frozenset[str]) -> str:
    """HF MLP / Sequential names -> official indices; top-level prefix -> `detector.` / `tracker.`."""
    key = _mlp_index(key, raw_keys)
    key = re.sub(r"\.layer(\d)\.", lambda m: f".layers.{int(m.group(1)) - 1}.", key)  # 1-based
    key = _sequential_index(key, raw_keys)
    if key.startswith("detector_model."):
        return "detector." + key[len("detector_model.") :]
    if key.startswith("tracker_model."):
        return "tracker." + key[len("tracker_model.") :]
    if key.startswith("tracker_neck."):
        return "detector.tracker_neck." + key[len("tracker_neck.") :]
    return "detector." + key  # HF Sam3Model: the detector without a prefix


def _mlp_index(key: str, raw_keys: frozenset[str]) -> str:
    """HF SAM MLPs name their layers proj_in / layers.K / proj_out: -> layers.0 / K+1 / last."""
    match = re.match(r"(.*)\.(proj_in|proj_out|layers\.(\d+))\.(weight|bias)$", key)
    if not match or f"{match.group(1)}.proj_in.weight" not in raw_keys:
        return key
    head, which, k, wb = match.groups()
    if which == "proj_in":
        index = 0
    elif which == "proj_out":
        middle = re.compile(rf"{re.escape(head)}\.layers\.\d+\.weight")
        index = 1 + sum(1 for s in raw_keys if middle.fullmatch(s))
    else:
        index = int(k) + 1
    return f"{head}.layers.{index}.{wb}"


def _sequential_index(key: str, raw_keys: frozenset[str]) -> str:
    """Named HF modules of official nn.Sequential stacks -> their index in that stack."""
    m = re.search(r"\.(mask_embed|mask_decoder)\.(\w+)\.(weight|bias)$", key)
    if m and m.group(2) in _SEQUENTIAL_NAMES:
        stack = "mask_embed" if m.group(1) == "mask_embed" else "mask_decoder.output_upscaling"
        return key[: m.start()] + f".{stack}.{_SEQUENTIAL_NAMES[m.group(2)]}.{m.group(3)}"
    m = re.search(r"mask_downsampler\.(layers\.(\d+)\.(conv|layer_norm)|final_conv)\.", key)
    if m:
        if m.group(1) == "final_conv":
            conv = re.compile(
                re.escape(key[: m.start()]) + r"mask_downsampler\.layers\.\d+\.conv\.weight"
            )
            index = 3 * sum(1 for s in raw_keys if conv.fullmatch(s))
        else:
            index = 3 * int(m.group(2)) + (0 if m.group(3) == "conv" else 1)
        return key.replace(m.group(0), f"mask_downsampler.encoder.{index}.")
    m = re.search(r"fpn_layers\.(\d+)\.scale_layers\.(\d+)\.", key)
    if m:
        level, position = m.groups()
        two_convs = f"{key[: m.start()]}fpn_layers.{level}.scale_layers.2.weight" in raw_keys
        name = {("0", True): "dconv_2x2_0", ("2", True): "dconv_2x2_1"}.get(
            (position, two_convs), "dconv_2x2"
        )
        return key.replace(m.group(0), f"fpn_layers.{level}.{name}.")
    return key


def _rename(key: str) -> tuple[str, str | None]:
    """Normalised HF key -> (official key, q/k/v part or None). Unknown keys come back unchanged."""
    if key.startswith("detector.tracker_neck.fpn_layers."):
        sub = "vision_encoder.neck." + key[len("detector.tracker_neck.") :]
        official, part = _rename("detector." + sub)
        return official.replace(".vision_backbone.convs.", ".vision_backbone.sam2_convs."), part
    for prefix, rules in _COMPILED.items():
        if not key.startswith(prefix):
            continue
        body = key[len(prefix) :]
        for pattern, template in rules:
            match = pattern.fullmatch(body)
            if match:
                groups = match.groupdict()
                return prefix + template.format(**groups), groups.get(
                    "qkv"
                ) if "{qkv}" not in template else None
    return key, None


def _convert(official: str, tensor: torch.Tensor) -> torch.Tensor:
    """Tensor layout fixes for keys HF stores differently."""
    if official.endswith("trunk.pos_embed"):
        cls_slot = torch.zeros_like(tensor[:, :1])  # official table keeps an unused cls row
        return torch.cat([cls_slot, tensor], dim=1)
    if official.endswith("encoder.text_projection"):
        return tensor.t()
    return tensor
