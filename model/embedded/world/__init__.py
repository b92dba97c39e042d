"""The concept world: a deterministic generator of prompted images and video clips.

Pure computation (numpy, OpenCV as a rasteriser); nothing here reads or writes files.
"""

from model.embedded.world.clips import Clip, ClipConfig, clip_phrases, sample_clip
from model.embedded.world.concepts import (
    Attributes,
    Colour,
    Phrase,
    Shape,
    Size,
    Texture,
    all_phrases,
    held_out_phrases,
    training_phrases,
    vocabulary_words,
)
from model.embedded.world.images import ImageConfig, PromptedImage, sample_image
from model.embedded.world.scene import Scene, WorldConfig
from model.embedded.world.splits import VALIDATION_FIRST_INDEX, Split, clip_sample, image_sample

__all__ = [
    "VALIDATION_FIRST_INDEX",
    "Attributes",
    "Clip",
    "ClipConfig",
    "Colour",
    "ImageConfig",
    "Phrase",
    "PromptedImage",
    "Scene",
    "Shape",
    "Size",
    "Split",
    "Texture",
    "WorldConfig",
    "all_phrases",
    "clip_phrases",
    "clip_sample",
    "held_out_phrases",
    "image_sample",
    "sample_clip",
    "sample_image",
    "training_phrases",
    "vocabulary_words",
]
