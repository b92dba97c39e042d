"""SAM heads of the tracker: prompt encoder, two-way transformer and mask decoder."""

from model.sam.mask_decoder import DecoderOutput, MaskDecoder, select_masks
from model.sam.prompt_encoder import PromptEncoder
from model.sam.transformer import TwoWayTransformer

__all__ = ["DecoderOutput", "MaskDecoder", "PromptEncoder", "TwoWayTransformer", "select_masks"]
