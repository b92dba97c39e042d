"""Tracker networks on the tiny config: shapes, official key layout, and the batching contract
(N objects in one call == N calls of one object, whatever their memories and prompts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.config import CONFIGS, TrackerConfig
from model.tracker.mask_decoder import DecoderOutput, select_masks
from model.tracker.memory_attention import MemoryAttention, memory_tokens
from model.tracker.memory_bank import MemoryBatch
from model.tracker.memory_encoder import MemoryEncoder
from model.tracker.tracker import NO_OBJ_SCORE, Tracker
from model.tracker.types import ObjectPrompt, TrackerFeatures

CONFIG = CONFIGS["tiny"].tracker
G, C, M = CONFIG.grid_size, CONFIG.d_model, CONFIG.mem_dim
KEYS_TSV = Path(__file__).parents[1] / "data" / "sam3-official-state-dict-keys.tsv"


@pytest.fixture(scope="module")
def tracker() -> Tracker:
    torch.manual_seed(0)
    model = Tracker(CONFIG).eval()
    with torch.no_grad():  # random init leaves several tensors ~0; spread them out
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def features(tracker: Tracker) -> TrackerFeatures:
    g = torch.Generator().manual_seed(1)
    maps = [torch.randn(1, C, s * G, s * G, generator=g) for s in (4, 2, 1)]
    with torch.no_grad():
        return tracker.prepare_features(maps)


def random_memory(spatial: list[int], pointers: list[int], seed: int = 2) -> MemoryBatch:
    """Padded memories: object i has spatial[i] memories and pointers[i] pointers."""
    g = torch.Generator().manual_seed(seed)
    n, s, p = len(spatial), max(spatial), max(pointers)
    valid = torch.arange(s)[None] < torch.tensor(spatial)[:, None]
    pointer_valid = torch.arange(p)[None] < torch.tensor(pointers)[:, None]
    return MemoryBatch(
        features=torch.randn(n, s, M, G, G, generator=g),
        offsets=torch.randint(0, CONFIG.num_maskmem, (n, s), generator=g),
        valid=valid,
        pointers=torch.randn(n, p, C, generator=g),
        pointer_distances=torch.randint(1, 16, (n, p), generator=g).float(),
        pointer_valid=pointer_valid,
    )


def rows(memory: MemoryBatch, index: list[int]) -> MemoryBatch:
    return MemoryBatch(*(t[index] for t in memory.tensors()))


# --- layout ------------------------------------------------------------------------------------


def test_full_size_state_dict_matches_official_tracker_keys() -> None:
    model = Tracker(TrackerConfig(), device=torch.device("meta"))
    ours = {f"tracker.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    official = {}
    for line in KEYS_TSV.read_text().splitlines():
        key, shape, _ = line.split("\t")
        if key.startswith("tracker."):
            official[key] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    assert ours == official


def test_meta_build_then_load_gives_the_same_outputs(
    tracker: Tracker, features: TrackerFeatures
) -> None:
    loaded = Tracker(CONFIG, device=torch.device("meta"))
    loaded.load_state_dict(tracker.state_dict(), strict=True, assign=True)
    memory = random_memory([2, 3], [1, 4])
    with torch.no_grad():
        a = tracker.track_step(features, memory)
        b = loaded.eval().track_step(features, memory)
    torch.testing.assert_close(a.low_res_masks, b.low_res_masks)


# --- modules -----------------------------------------------------------------------------------


def test_prompt_encoder_shapes(tracker: Tracker) -> None:
    pe = tracker.sam_prompt_encoder
    assert pe.dense_pe().shape == (1, C, G, G)
    tokens = pe.embed_points(torch.rand(3, 2, 2) * CONFIG.image_size, torch.tensor([[1, 0]] * 3))
    assert tokens.shape == (3, 3, C)  # + the padding token
    assert pe.embed_masks(torch.randn(2, 1, 4 * G, 4 * G)).shape == (2, C, G, G)
    assert pe.embed_masks(torch.randn(2, 1, 50, 50)).shape == (2, C, G, G)  # resized first
    assert pe.no_mask_dense(4).shape == (4, C, G, G)


def test_mask_decoder_shapes(tracker: Tracker, features: TrackerFeatures) -> None:
    out = tracker.sam_mask_decoder(
        image=torch.randn(2, C, G, G),
        image_pe=tracker.sam_prompt_encoder.dense_pe(),
        sparse=torch.randn(2, 3, C),
        dense=torch.randn(2, C, G, G),
        feat_s0=features.feat_s0,
        feat_s1=features.feat_s1,
    )
    assert out.masks.shape == (2, 4, 4 * G, 4 * G)
    assert out.ious.shape == (2, 4) and bool(((out.ious >= 0) & (out.ious <= 1)).all())
    assert out.mask_tokens.shape == (2, 4, C)
    assert out.object_score_logits.shape == (2, 1)


def test_select_masks_follows_the_official_rules() -> None:
    masks = torch.full((3, 4, 8, 8), -5.0)
    masks[0, 0] = 5.0  # object 0: a perfectly stable single mask
    masks[1, 0] = 0.01  # object 1: a single mask on the threshold, unstable
    ious = torch.tensor([[0.1, 0.2, 0.9, 0.3]] * 3)
    tokens = torch.arange(4.0)[None, :, None].expand(3, 4, 2)
    out = DecoderOutput(masks, ious, tokens, torch.zeros(3, 1))
    chosen = select_masks(
        out,
        torch.tensor([False, False, True]),
        dynamic_stability=True,
        stability_delta=0.05,
        stability_thresh=0.98,
    )
    assert chosen.masks.shape == (3, 1, 8, 8)
    assert chosen.ious.tolist() == pytest.approx([0.1, 0.9, 0.9])  # 0 stable; 1 falls back to 2
    assert chosen.tokens[:, 0].tolist() == [0.0, 0.0, 2.0]  # single-mask pointers: token 0


def test_memory_encoder_shapes() -> None:
    encoder = MemoryEncoder(
        d_model=C,
        mem_dim=M,
        downsampler_kernel_size=3,
        downsampler_stride=2,
        downsampler_total_stride=16,
        fuser_layers=2,
        fuser_kernel_size=7,
        fuser_mlp_dim=32,
        fuser_layer_scale_init=1e-6,
    )
    out = encoder(torch.randn(2, C, G, G), torch.randn(2, 1, 16 * G, 16 * G))
    assert out.shape == (2, M, G, G)
    with pytest.raises(ValueError, match="16x"):
        encoder(torch.randn(2, C, G, G), torch.randn(2, 1, 4 * G, 4 * G))


def test_memory_attention_shapes_and_padding(tracker: Tracker) -> None:
    attn = tracker.memory_attention
    assert isinstance(attn, MemoryAttention)
    memory = random_memory([1, 2], [3, 1])
    tpos = tracker.maskmem_tpos_enc.reshape(CONFIG.num_maskmem, M)
    keys = memory_tokens(
        memory, tpos_enc=tpos, pointer_pos=torch.zeros(2, 3, M), dtype=torch.float32
    )
    k = C // M
    assert keys.tokens.shape == (2, 2 * G * G + 3 * k, M)
    assert keys.num_obj_ptr_tokens == 3 * k
    assert keys.padding is not None and keys.padding.shape == keys.tokens.shape[:2]
    with torch.no_grad():
        out = attn(torch.randn(2, C, G, G), torch.randn(1, C, G, G), keys)
    assert out.shape == (2, C, G, G) and bool(out.isfinite().all())


# --- tracker -----------------------------------------------------------------------------------


@torch.no_grad()
def test_track_step_and_encode_memory_shapes(tracker: Tracker, features: TrackerFeatures) -> None:
    out = tracker.track_step(features, random_memory([1, 3, 2], [2, 5, 1]), high_res=True)
    assert out.low_res_masks.shape == (3, 1, 4 * G, 4 * G)
    assert out.high_res_masks is not None
    assert out.high_res_masks.shape == (3, 1, CONFIG.image_size, CONFIG.image_size)
    assert out.iou_scores.shape == (3,) and out.object_score_logits.shape == (3, 1)
    assert out.obj_ptr.shape == (3, C)
    assert out.low_res_masks.dtype == torch.float32
    memory = tracker.encode_memory(features, out.low_res_masks, out.object_score_logits)
    assert memory.shape == (3, M, G, G) and bool(memory.isfinite().all())
    assert (
        tracker.track_step(features, random_memory([1], [1]), high_res=False).high_res_masks is None
    )


@torch.no_grad()
def test_batched_objects_equal_one_at_a_time(tracker: Tracker, features: TrackerFeatures) -> None:
    """Different memory counts (padding) and different prompts share one call exactly."""
    memory = random_memory([1, 4, 2, 3, 0], [1, 6, 3, 0, 0])
    prompts = [
        None,
        ObjectPrompt(points=torch.tensor([[30.0, 40.0]]), labels=torch.tensor([1])),
        ObjectPrompt(box=torch.tensor([10.0, 20.0, 80.0, 90.0])),
        ObjectPrompt(mask=torch.rand(60, 60) > 0.5),
        ObjectPrompt(
            points=torch.tensor([[30.0, 40.0], [70.0, 20.0]]), labels=torch.tensor([1, 0])
        ),
    ]
    batched = tracker.track_step(features, memory, prompts, high_res=True)
    for i in range(len(prompts)):
        single = tracker.track_step(features, rows(memory, [i]), [prompts[i]], high_res=True)
        for name, a, b in zip(batched._fields, batched, single, strict=True):
            torch.testing.assert_close(a[i : i + 1], b, atol=1e-5, rtol=1e-5, msg=name)
    scores = batched.object_score_logits
    memories = tracker.encode_memory(features, batched.low_res_masks, scores, binarize=True)
    for i in range(len(prompts)):
        one = tracker.encode_memory(
            features, batched.low_res_masks[i : i + 1], scores[i : i + 1], binarize=True
        )
        torch.testing.assert_close(memories[i : i + 1], one, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_padding_content_is_ignored(tracker: Tracker, features: TrackerFeatures) -> None:
    memory = random_memory([1, 3], [2, 4])
    noisy = memory._replace(
        features=torch.where(
            memory.valid[:, :, None, None, None],
            memory.features,
            1e3 * torch.randn_like(memory.features),
        ),
        pointers=torch.where(memory.pointer_valid[:, :, None], memory.pointers, 1e3),
    )
    a = tracker.track_step(features, memory)
    b = tracker.track_step(features, noisy)
    torch.testing.assert_close(a.low_res_masks, b.low_res_masks)


@torch.no_grad()
def test_objects_without_memory_use_the_no_memory_path(
    tracker: Tracker, features: TrackerFeatures
) -> None:
    """A row with no valid memory decodes exactly as with no memory at all (first frame)."""
    prompt = [ObjectPrompt(points=torch.tensor([[50.0, 50.0]]), labels=torch.tensor([1]))]
    alone = tracker.track_step(features, None, prompt)
    empty_row = tracker.track_step(features, random_memory([0], [0]), prompt)
    torch.testing.assert_close(alone.low_res_masks, empty_row.low_res_masks)
    assert not torch.equal(
        alone.low_res_masks,
        tracker.track_step(features, random_memory([2], [2]), prompt).low_res_masks,
    )


@torch.no_grad()
def test_absent_objects_get_placeholder_mask_and_no_object_pointer(
    tracker: Tracker, features: TrackerFeatures
) -> None:
    head = tracker.sam_mask_decoder.pred_obj_score_head.layers[-1]
    saved = head.bias.clone()
    head.bias.fill_(-1e4)
    try:
        out = tracker.track_step(features, random_memory([2, 1], [1, 1]))
    finally:
        head.bias.copy_(saved)
    assert bool((out.object_score_logits < 0).all())
    assert bool((out.low_res_masks == NO_OBJ_SCORE).all())
    torch.testing.assert_close(out.obj_ptr, tracker.no_obj_ptr.expand(2, -1))
    absent = tracker.encode_memory(features, out.low_res_masks, out.object_score_logits)
    present = tracker.encode_memory(features, out.low_res_masks, -out.object_score_logits)
    expected = tracker.no_obj_embed_spatial[0][None, :, None, None].expand_as(absent)
    torch.testing.assert_close(absent - present, expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_mask_prompt_is_taken_as_output(tracker: Tracker, features: TrackerFeatures) -> None:
    mask = torch.zeros(CONFIG.memory_mask_size, CONFIG.memory_mask_size, dtype=torch.bool)
    mask[16:80, 32:96] = True
    out = tracker.track_step(
        features, None, [ObjectPrompt(mask=mask), ObjectPrompt(mask=torch.zeros_like(mask))]
    )
    low = out.low_res_masks[0, 0]
    assert float(low[8, 12]) == pytest.approx(10.0) and float(low[0, 0]) == pytest.approx(-10.0)
    assert out.object_score_logits[:, 0].tolist() == [10.0, -10.0]  # empty mask: absent
    assert out.iou_scores.tolist() == [1.0, 1.0]
    torch.testing.assert_close(out.obj_ptr[1], tracker.no_obj_ptr[0])


def test_bad_inputs_raise(tracker: Tracker, features: TrackerFeatures) -> None:
    with pytest.raises(ValueError, match="memories, prompts"):
        tracker.track_step(features, None)
    with pytest.raises(ValueError, match="2 objects in memory but 1 prompts"):
        tracker.track_step(features, random_memory([1, 1], [1, 1]), [None])
    with pytest.raises(ValueError, match="3 neck levels"):
        tracker.prepare_features([features.pix])
    with pytest.raises(ValueError, match="cannot be combined"):
        ObjectPrompt(mask=torch.ones(4, 4), box=torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="needs points"):
        ObjectPrompt()


@pytest.mark.gpu
@torch.no_grad()
def test_cuda_bfloat16_runs(tracker: Tracker) -> None:
    model = Tracker(CONFIG, device=torch.device("cuda"), dtype=torch.bfloat16).eval()
    model.load_state_dict(tracker.state_dict())
    maps = [torch.randn(1, C, s * G, s * G, device="cuda", dtype=torch.bfloat16) for s in (4, 2, 1)]
    features = model.prepare_features(maps)
    memory = MemoryBatch(*(t.cuda() for t in random_memory([1, 3], [2, 4]).tensors()))
    prompts = [None, ObjectPrompt(points=torch.tensor([[30.0, 40.0]]), labels=torch.tensor([1]))]
    out = model.track_step(features, memory, prompts, high_res=True)
    memories = model.encode_memory(features, out.low_res_masks, out.object_score_logits)
    assert out.low_res_masks.device.type == "cuda" and bool(out.low_res_masks.isfinite().all())
    assert memories.dtype == torch.bfloat16 and bool(memories.isfinite().all())
