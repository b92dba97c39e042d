"""DETR decoder: object queries plus a presence token, refined boxes, box-relative position bias.

Official `TransformerDecoder` with `TransformerDecoderLayer`s (reference §1a): 200 learned queries
start from learned reference boxes; every post-norm layer runs self-attention over
[presence token; queries], cross-attention to the prompt tokens, cross-attention to the fused image
tokens with a per-head bias computed from each query's current box, and a ReLU FFN. After every
layer the boxes are refined (`bbox_embed` on the normed queries, in logit space) and the presence
token gives an image-level "is the concept here" logit. At inference there are exactly 200 queries
(the one-to-many "DAC" copies are a training-only device and are not built).
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from model.nn.box_ops import cxcywh_to_xyxy, inverse_sigmoid
from model.nn.layers import MLP, Factory, PackedMultiheadAttention
from model.nn.position import sine_encode_xy


class DecoderOutput(NamedTuple):
    """Per-layer results, L = number of decoder layers, P prompts, Q queries.

    hidden: L x P x Q x C query embeddings after the output LayerNorm; boxes: L x P x Q x 4 cxcywh
    normalised (the refined box of each layer); presence_logits: L x P.
    """

    hidden: torch.Tensor
    boxes: torch.Tensor
    presence_logits: torch.Tensor


class DecoderLayer(nn.Module):
    """Post-norm: self-attn -> norm2 -> text cross-attn -> catext_norm -> image cross-attn -> norm1 -> FFN -> norm3."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        *,
        eps: float = 1e-5,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.self_attn = PackedMultiheadAttention(dim, num_heads, **factory)
        self.norm2 = nn.LayerNorm(dim, eps=eps, **factory)
        self.ca_text = PackedMultiheadAttention(dim, num_heads, **factory)
        self.catext_norm = nn.LayerNorm(dim, eps=eps, **factory)
        self.cross_attn = PackedMultiheadAttention(dim, num_heads, **factory)
        self.norm1 = nn.LayerNorm(dim, eps=eps, **factory)
        self.linear1 = nn.Linear(dim, ffn_dim, **factory)
        self.linear2 = nn.Linear(ffn_dim, dim, **factory)
        self.norm3 = nn.LayerNorm(dim, eps=eps, **factory)

    def forward(
        self,
        x: torch.Tensor,
        query_pos: torch.Tensor,
        prompt: torch.Tensor,
        prompt_padding: torch.Tensor,
        memory: torch.Tensor,
        memory_keys: torch.Tensor,
        box_bias: torch.Tensor,
    ) -> torch.Tensor:
        """x: P x (1 + Q) x C (presence token first); query_pos: broadcastable to x, zero for the
        presence token; prompt: P x L x C with padding P x L; memory: P x HW x C values and
        memory_keys (memory + position) keys; box_bias: additive P|1 x heads x (1 + Q) x HW.
        """
        q = x + query_pos
        x = self.norm2(x + self.self_attn(q, q, x))
        x = self.catext_norm(
            x + self.ca_text(x + query_pos, prompt, prompt, key_padding_mask=prompt_padding)
        )
        x = self.norm1(x + self.cross_attn(x + query_pos, memory_keys, memory, attn_mask=box_bias))
        out: torch.Tensor = self.norm3(x + self.linear2(F.relu(self.linear1(x))))
        return out


class DetrDecoder(nn.Module):
    """Official `detector.transformer.decoder`."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        num_queries: int,
        *,
        eps: float = 1e-5,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = Factory(device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            DecoderLayer(dim, num_heads, ffn_dim, eps=eps, **factory) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=eps, **factory)
        self.bbox_embed = MLP(dim, dim, 4, 3, **factory)
        self.query_embed = nn.Embedding(num_queries, dim, **factory)
        self.reference_points = nn.Embedding(num_queries, 4, **factory)  # sigmoid -> initial cxcywh
        self.boxRPB_embed_x = MLP(2, dim, num_heads, 2, **factory)  # official key names
        self.boxRPB_embed_y = MLP(2, dim, num_heads, 2, **factory)
        self.presence_token = nn.Embedding(1, dim, **factory)
        self.presence_token_head = MLP(dim, dim, 1, 3, **factory)
        self.presence_token_out_norm = nn.LayerNorm(dim, eps=eps, **factory)
        self.ref_point_head = MLP(2 * dim, dim, dim, 2, **factory)
        last = cast(nn.Linear, self.bbox_embed.layers[-1])
        nn.init.zeros_(last.weight)  # refinement starts as the identity
        nn.init.zeros_(last.bias)

    def forward(
        self,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        feature_size: tuple[int, int],
        prompt: torch.Tensor,
        prompt_padding: torch.Tensor,
    ) -> DecoderOutput:
        """memory: P x HW x C fused image tokens on an H x W grid (`feature_size`); memory_pos:
        1|P x HW x C; prompt: P x L x C with padding P x L (True = padding)."""
        num_prompts = memory.shape[0]
        tokens = torch.cat((self.presence_token.weight, self.query_embed.weight))  # (1 + Q) x C
        x = tokens.expand(num_prompts, *tokens.shape)  # P x (1 + Q) x C
        boxes = self.reference_points.weight.sigmoid()[None]  # 1 x Q x 4, shared until refined
        memory_keys = memory + memory_pos  # same keys for every layer

        hidden, all_boxes, presence = [], [], []
        for layer in self.layers:
            query_pos = self.ref_point_head(box_sine_embedding(boxes, x.shape[-1]))  # P|1 x Q x C
            query_pos = F.pad(query_pos, (0, 0, 1, 0))  # zero position for the presence token
            bias = self.box_bias(boxes, feature_size)  # P|1 x heads x (1 + Q) x HW
            x = layer(x, query_pos, prompt, prompt_padding, memory, memory_keys, bias)

            queries = self.norm(x[:, 1:])  # P x Q x C
            refined = (inverse_sigmoid(boxes) + self.bbox_embed(queries)).sigmoid()  # P x Q x 4
            # The official clamp of this logit to +-10 discards its result; we do not clamp either.
            presence_logit = self.presence_token_head(
                self.presence_token_out_norm(x[:, 0])
            ).squeeze(-1)
            hidden.append(queries)
            all_boxes.append(refined)
            presence.append(presence_logit)
            boxes = refined.detach()
        return DecoderOutput(torch.stack(hidden), torch.stack(all_boxes), torch.stack(presence))

    def box_bias(self, boxes: torch.Tensor, feature_size: tuple[int, int]) -> torch.Tensor:
        """Box-relative position bias ("log" boxRPB): P x Q x 4 cxcywh -> P x heads x (1 + Q) x HW.

        For every grid row (column), the signed distances to the box's top and bottom (left and
        right) edges, in image fractions, are log-scaled and embedded into one bias per head; the
        row and column biases add up. The presence token's row is zero.
        """
        height, width = feature_size
        xyxy = cxcywh_to_xyxy(boxes)  # P x Q x 4
        rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype) / height
        cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype) / width
        delta_y = rows[None, None, :, None] - xyxy[:, :, None, 1::2]  # P x Q x H x 2 (to y0, y1)
        delta_x = cols[None, None, :, None] - xyxy[:, :, None, 0::2]  # P x Q x W x 2 (to x0, x1)
        # P x heads x Q x H, and P x heads x Q x W
        bias_y: torch.Tensor = self.boxRPB_embed_y(_log_scale(delta_y)).permute(0, 3, 1, 2)
        bias_x: torch.Tensor = self.boxRPB_embed_x(_log_scale(delta_x)).permute(0, 3, 1, 2)
        num_prompts, heads, num_queries, _ = bias_y.shape
        if torch.is_grad_enabled() and (bias_y.requires_grad or bias_x.requires_grad):
            # training: `out=` writes are not differentiable, so build it out of place
            body = bias_y[..., :, None] + bias_x[..., None, :]  # P x heads x Q x H x W
            presence_row = body.new_zeros(num_prompts, heads, 1, height, width)
            return torch.cat((presence_row, body), dim=2).flatten(3)  # P x heads x (1 + Q) x HW
        bias = bias_y.new_empty(num_prompts, heads, 1 + num_queries, height, width)
        bias[:, :, 0] = 0
        torch.add(
            bias_y[..., :, None], bias_x[..., None, :], out=bias[:, :, 1:]
        )  # written in place
        return bias.flatten(3)  # P x heads x (1 + Q) x HW


def _log_scale(delta: torch.Tensor) -> torch.Tensor:
    """sign(d) * log2(8 |d| + 1) / log2(8): image fractions in [-1, 1] -> about [-1, 1]."""
    scaled = delta * 8
    return torch.sign(scaled) * torch.log2(scaled.abs() + 1.0) / math.log2(8)


def box_sine_embedding(boxes: torch.Tensor, dim: int) -> torch.Tensor:
    """... x 4 cxcywh -> ... x 2 dim sine features ordered (y, x, w, h), dim / 2 per coordinate."""
    flat = boxes.reshape(-1, 4)
    cx, cy, w, h = flat.float().unbind(-1)
    pos_x, pos_y = sine_encode_xy(cx, cy, dim // 2)
    pos_w, pos_h = sine_encode_xy(w, h, dim // 2)
    out = torch.cat((pos_y, pos_x, pos_w, pos_h), dim=-1).to(boxes.dtype)  # N x 2 dim
    return out.view(*boxes.shape[:-1], 2 * dim)
