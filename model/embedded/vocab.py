"""The embedded model's text vocabulary: a small CLIP-style BPE learned from the world's words.

Every world word becomes a single token; any other text still encodes (byte fallback), and the
training data shows the model such words as prompts with nothing to find.
"""

from __future__ import annotations

from model.backbone.tokenizer import Tokenizer, train_bpe
from model.embedded.world import vocabulary_words

VOCAB_SIZE = 580  # 512 byte symbols + 66 merges (one token per world word) + SOT/EOT
CONTEXT_LENGTH = 8

# Words outside the world, used as prompts that match nothing (so unknown words find nothing).
FOREIGN_WORDS = (
    "person", "car", "dog", "cat", "face", "tree", "house", "bottle", "cup", "chair",
    "bird", "phone", "hand", "ball", "box", "bicycle", "window", "flower", "orange", "black",
    "pink", "brown", "grey", "wavy", "hexagon", "oval", "heart", "arrow", "spiral", "moon",
)  # fmt: skip


def world_tokenizer(context_length: int = CONTEXT_LENGTH) -> Tokenizer:
    tokenizer = train_bpe(vocabulary_words(), VOCAB_SIZE, context_length=context_length)
    for word in vocabulary_words():
        if len(tokenizer.encode(word)) != 1:  # a tokenizers version that merges differently
            raise RuntimeError(f"world word {word!r} is not a single token in the embedded vocab")
    return tokenizer
