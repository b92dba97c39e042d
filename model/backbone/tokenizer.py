"""CLIP byte-level BPE tokenizer (SAM 3's `SimpleTokenizer`), built on the `tokenizers` library.

Vocabularies are passed in or read from disk, never downloaded:

* `Tokenizer.from_clip_bpe(path)`: the official `bpe_simple_vocab_16e6.txt.gz` (49408 ids; the
  file ships in `model/assets`, byte-identical to open_clip's and SAM 3's);
* `Tokenizer.from_folder(path)`: HF layout `vocab.json` + `merges.txt`;
* `Tokenizer.from_files(files)`: the same two files as strings (embedded in native checkpoints);
* `train_bpe(words, vocab_size)`: a small CLIP-style vocab learned from a word list.

Encoding follows SAM 3: unescape HTML twice, collapse whitespace, lowercase, BPE with `</w>`
word ends, then `[SOT] tokens [EOT]` padded with id 0 to the context length (32); longer prompts
are cut and end with EOT. (The official `ftfy` text repair is not applied; it only changes
mis-encoded unicode.)
"""

from __future__ import annotations

import gzip
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple, cast

import torch
from tokenizers import Regex, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as _HFTokenizer

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
PAD_ID = 0  # SAM 3 pads with id 0 (which is also "!" in the CLIP vocab)
END_OF_WORD = "</w>"
# CLIP's word split: contractions, letter runs, single digits, runs of other non-space characters.
_CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
OFFICIAL_VOCAB = "bpe_simple_vocab_16e6.txt.gz"


class TokenBatch(NamedTuple):
    """ids (N, context) int64 and padding_mask (N, context) bool, True = padding."""

    ids: torch.Tensor
    padding_mask: torch.Tensor


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode character table (256 entries, CLIP order)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table  # insertion order = CLIP order: printable bytes first, then the remapped ones


def clean_text(text: str) -> str:
    """SAM 3's "lower" cleaning, minus ftfy: unescape HTML twice, collapse whitespace, lowercase."""
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


class Tokenizer:
    """Text -> CLIP token ids: `tokenizer(["a red car"])` -> `TokenBatch` of (1, 32)."""

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Sequence[tuple[str, str]],
        *,
        context_length: int = 32,
    ) -> None:
        if SOT not in vocab or EOT not in vocab:
            raise ValueError(f"vocabulary lacks {SOT} / {EOT}")
        if context_length < 2:
            raise ValueError("context_length must leave room for SOT and EOT")
        self.vocab = dict(vocab)
        self.merges: list[tuple[str, str]] = [(a, b) for a, b in merges]
        self.context_length = context_length
        self.sot_id = self.vocab[SOT]
        self.eot_id = self.vocab[EOT]
        bpe = models.BPE(
            vocab=self.vocab, merges=self.merges, end_of_word_suffix=END_OF_WORD, fuse_unk=False
        )
        self._bpe = _HFTokenizer(bpe)
        self._bpe.pre_tokenizer = _pre_tokenizer()

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    # --- constructors ----------------------------------------------------------------------

    @classmethod
    def from_clip_bpe(
        cls, path: str | Path | None = None, *, context_length: int = 32
    ) -> Tokenizer:
        """Official `bpe_simple_vocab_16e6.txt.gz` (default: the copy in `model/assets`)."""
        if path is None:
            data = resources.files("model").joinpath("assets", OFFICIAL_VOCAB).read_bytes()
        else:
            data = Path(path).read_bytes()
        lines = gzip.decompress(data).decode("utf-8").split("\n")
        merges = [
            cast(tuple[str, str], tuple(line.split())) for line in lines[1 : 49152 - 256 - 2 + 1]
        ]  # first line: header
        base = list(bytes_to_unicode().values())
        tokens = base + [b + END_OF_WORD for b in base] + ["".join(m) for m in merges] + [SOT, EOT]
        return cls({t: i for i, t in enumerate(tokens)}, merges, context_length=context_length)

    @classmethod
    def from_files(cls, files: Mapping[str, str], *, context_length: int = 32) -> Tokenizer:
        """From the contents of `vocab.json` and `merges.txt` (HF layout)."""
        vocab = json.loads(files["vocab.json"])
        merges = [
            cast(tuple[str, str], tuple(line.split()))
            for line in files["merges.txt"].splitlines()
            if line.strip() and not line.startswith("#version")
        ]
        return cls(vocab, merges, context_length=context_length)

    @classmethod
    def from_folder(cls, folder: str | Path, *, context_length: int = 32) -> Tokenizer:
        """`vocab.json` + `merges.txt`, or the official `bpe_simple_vocab_16e6.txt.gz`, in `folder`."""
        folder = Path(folder)
        if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            files = {
                name: (folder / name).read_text(encoding="utf-8")
                for name in ("vocab.json", "merges.txt")
            }
            return cls.from_files(files, context_length=context_length)
        if (folder / OFFICIAL_VOCAB).exists():
            return cls.from_clip_bpe(folder / OFFICIAL_VOCAB, context_length=context_length)
        raise FileNotFoundError(
            f"{folder} has neither vocab.json + merges.txt nor {OFFICIAL_VOCAB}"
        )

    def to_files(self) -> dict[str, str]:
        """`vocab.json` and `merges.txt` contents (what `from_files` reads back)."""
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        return {"vocab.json": json.dumps(self.vocab, ensure_ascii=False), "merges.txt": merges}

    # --- encoding ---------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """BPE ids of the cleaned text, without SOT/EOT."""
        return self._bpe.encode(clean_text(text), add_special_tokens=False).ids

    def __call__(self, texts: Sequence[str]) -> TokenBatch:
        if isinstance(texts, str):
            raise TypeError("pass a sequence of strings, e.g. tokenizer(['a red car'])")
        ids = torch.full((len(texts), self.context_length), PAD_ID, dtype=torch.long)
        padding = torch.ones((len(texts), self.context_length), dtype=torch.bool)
        for row, text in enumerate(texts):
            tokens = [self.sot_id, *self.encode(text), self.eot_id]
            if len(tokens) > self.context_length:
                tokens = tokens[: self.context_length]
                tokens[-1] = self.eot_id
            ids[row, : len(tokens)] = torch.tensor(tokens)
            padding[row, : len(tokens)] = False
        return TokenBatch(ids, padding)


def train_bpe(words: Iterable[str], vocab_size: int, *, context_length: int = 32) -> Tokenizer:
    """Learn a CLIP-style vocab of at most `vocab_size` ids from `words` (tiny/embedded models).

    Layout as CLIP: 256 byte symbols, the same with `</w>`, learned merges, then SOT and EOT, so any
    text still encodes (unknown words fall back to bytes).
    """
    base = list(bytes_to_unicode().values())
    n_merges = vocab_size - 2 * len(base) - 2
    if n_merges < 0:
        raise ValueError(f"vocab_size must be at least {2 * len(base) + 2}, got {vocab_size}")
    merges: list[tuple[str, str]] = []
    words = [clean_text(w) for w in words]
    if n_merges and words:
        learner = _HFTokenizer(models.BPE(end_of_word_suffix=END_OF_WORD))
        learner.pre_tokenizer = _pre_tokenizer()
        trainer = trainers.BpeTrainer(
            vocab_size=2 * len(base) + n_merges,
            initial_alphabet=base,
            end_of_word_suffix=END_OF_WORD,
            show_progress=False,
        )
        learner.train_from_iterator(words, trainer=trainer)
        learned = json.loads(learner.to_str())["model"]["merges"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in learned][:n_merges]
    tokens = base + [b + END_OF_WORD for b in base]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    tokens += [SOT, EOT]
    return Tokenizer({t: i for i, t in enumerate(tokens)}, merges, context_length=context_length)
