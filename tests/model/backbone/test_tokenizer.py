"""CLIP BPE tokenizer: official ids, padding/truncation, file formats, and the small-vocab trainer."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from model.backbone.tokenizer import EOT, SOT, Tokenizer, clean_text, train_bpe


@pytest.fixture(scope="module")
def clip() -> Tokenizer:
    return Tokenizer.from_clip_bpe()


def test_official_ids(clip: Tokenizer) -> None:
    """Reference ids from SAM 3's SimpleTokenizer (Meta's `sam3` tokenizer, run once on these words)."""
    batch = clip(["a red car", "visual"])
    assert batch.ids.shape == (2, 32)
    assert batch.ids[0, :6].tolist() == [49406, 320, 736, 1615, 49407, 0]
    assert batch.ids[1, :4].tolist() == [49406, 7195, 49407, 0]
    assert batch.padding_mask[0].tolist() == [False] * 5 + [True] * 27
    assert (clip.sot_id, clip.eot_id, clip.vocab_size) == (49406, 49407, 49408)


def test_cleaning_case_whitespace_and_html(clip: Tokenizer) -> None:
    assert clean_text("  A\tRed&amp;amp;Car \n") == "a red&car"
    assert clip.encode("A  RED car") == clip.encode("a red car")


def test_truncation_keeps_eot_last(clip: Tokenizer) -> None:
    ids = clip([" ".join(["word"] * 50)]).ids[0]
    assert ids[0].item() == clip.sot_id and ids[-1].item() == clip.eot_id
    assert not clip([" ".join(["word"] * 50)]).padding_mask.any()


def test_a_single_string_is_rejected(clip: Tokenizer) -> None:
    with pytest.raises(TypeError, match="sequence of strings"):
        clip("a red car")  # type: ignore[arg-type]


def test_hf_files_round_trip(clip: Tokenizer, tmp_path: Path) -> None:
    for name, text in clip.to_files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    again = Tokenizer.from_folder(tmp_path)
    texts = ["a person riding a bike", "zebra!", "élan 42"]
    assert again(texts).ids.tolist() == clip(texts).ids.tolist()


def test_official_gz_in_a_folder(tmp_path: Path) -> None:
    """The official file layout: a header line, then merges; vocab derived from bytes + merges."""
    header = "#version: test"
    merges = ["r e", "c a", "ca r</w>"]
    lines = [header, *merges] + ["x y"] * (49152 - 256 - 2 - len(merges))
    (tmp_path / "bpe_simple_vocab_16e6.txt.gz").write_bytes(
        gzip.compress("\n".join(lines).encode())
    )
    tok = Tokenizer.from_folder(tmp_path)
    assert tok.vocab["re"] == 512 and tok.vocab["car</w>"] == 514
    assert tok.encode("car") == [514]


def test_missing_vocab_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        Tokenizer.from_folder(tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        Tokenizer({"a": 0}, [])


def test_train_bpe_small_vocab() -> None:
    words = ["red car", "blue car", "person", "dog", "a person riding a bike"] * 10
    tok = train_bpe(words, 600)
    assert tok.vocab_size <= 600
    assert tok.vocab[SOT] == tok.vocab_size - 2 and tok.vocab[EOT] == tok.vocab_size - 1
    assert len(tok.encode("person")) == 1  # frequent words become one token
    unseen = tok(["zebra crossing ü"]).ids[0]  # unseen text still encodes through byte symbols
    assert unseen.max().item() < tok.vocab_size and (unseen > 0).sum() >= 3
    again = Tokenizer.from_files(tok.to_files())
    assert again(["red car"]).ids.tolist() == tok(["red car"]).ids.tolist()


def test_train_bpe_byte_level_only_and_limits() -> None:
    tok = train_bpe([], 514)
    assert tok.vocab_size == 514 and tok.merges == []
    assert tok.encode("ab") == [tok.vocab["a"], tok.vocab["b</w>"]]
    with pytest.raises(ValueError, match="at least 514"):
        train_bpe(["x"], 100)
