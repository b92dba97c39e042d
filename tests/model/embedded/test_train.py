"""Training objective: box/mask loss functions, Hungarian matching, the layered criterion."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.config import CONFIGS
from model.embedded.train.criterion import DetectionPredictions, detection_loss
from model.embedded.train.data import DetectionStream, detection_batch
from model.embedded.train.losses import (
    LossWeights,
    dice_loss,
    generalized_box_iou,
    sigmoid_focal_loss,
)
from model.embedded.train.matcher import hungarian_match, match_pair
from model.embedded.train.targets import PromptTargets, TargetBatch
from model.embedded.train.train_detector import (
    DetectorSchedule,
    detector_step,
    lr_factor,
    make_optimizer,
)
from model.embedded.train.train_tracker import (
    TrackerSchedule,
    clip_targets,
    tracker_parameters,
    tracker_step,
)
from model.embedded.vocab import CONTEXT_LENGTH, FOREIGN_WORDS, VOCAB_SIZE, world_tokenizer
from model.embedded.world import ClipConfig, ImageConfig, Split, WorldConfig, clip_sample
from model.sam3 import Sam3

W = LossWeights()


def test_generalized_box_iou() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [4.0, 0.0, 6.0, 2.0]])
    giou = generalized_box_iou(a, b)[0]
    # identical: 1; half overlap: IoU 2/6, hull = union -> 1/3; disjoint: 0 - (12 - 8) / 12
    torch.testing.assert_close(giou, torch.tensor([1.0, 1 / 3, -1 / 3]))


def test_focal_and_dice_reduce_to_known_forms() -> None:
    logits = torch.tensor([-2.0, 0.5, 3.0])
    targets = torch.tensor([0.0, 1.0, 1.0])
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0), bce)
    assert (sigmoid_focal_loss(logits, targets, alpha=0.5, gamma=2) < bce).all()
    perfect = dice_loss(torch.full((1, 8), 20.0), torch.ones(1, 8))
    wrong = dice_loss(torch.full((1, 8), -20.0), torch.ones(1, 8))
    assert perfect.item() < 1e-3 and wrong.item() > 0.8


def _targets(boxes: list[list[float]], hw: int = 16) -> PromptTargets:
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    masks = torch.zeros(len(b), hw, hw)
    for i, (cx, cy, w, h) in enumerate(b.tolist()):
        x0, y0 = int((cx - w / 2) * hw), int((cy - h / 2) * hw)
        masks[i, y0 : y0 + int(h * hw), x0 : x0 + int(w * hw)] = 1
    return PromptTargets(boxes=b, masks=masks)


def test_matching_recovers_the_assignment() -> None:
    target = _targets([[0.25, 0.25, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]])
    boxes = torch.rand(6, 4) * 0.2 + 0.4
    boxes[4], boxes[1] = target.boxes[0], target.boxes[1]
    scores = torch.full((6,), -3.0)
    q, t = match_pair(scores, boxes, target, W)
    assert dict(zip(q.tolist(), t.tolist(), strict=True)) == {1: 1, 4: 0}
    q2, t2 = match_pair(scores, boxes, target, W, repeats=2)
    assert len(q2) == 4 and sorted(t2.tolist()) == [0, 0, 1, 1] and len(set(q2.tolist())) == 4
    empty = _targets([])
    assert len(match_pair(scores, boxes, empty, W)[0]) == 0
    with pytest.raises(ValueError):
        hungarian_match(scores[None], boxes[None], TargetBatch.of([target, empty]), W)


def _predictions(
    targets: list[PromptTargets], quality: float, layers: int = 2
) -> DetectionPredictions:
    """Queries 0..G-1 of each pair predict its instances; `quality` 1 = exact, 0 = noise."""
    torch.manual_seed(0)
    p, q, hw = len(targets), 8, 16
    scores = torch.full((layers, p, q), -6.0)
    boxes = torch.rand(layers, p, q, 4) * 0.1 + 0.45
    masks = torch.full((p, q, hw // 2, hw // 2), -6.0)
    presence = torch.zeros(layers, p)
    for i, t in enumerate(targets):
        g = len(t)
        presence[:, i] = 6.0 if g else -6.0
        scores[:, i, :g] = 6.0 * quality
        noise = (1 - quality) * 0.1 * torch.randn(g, 4)
        boxes[:, i, :g] = (t.boxes + noise).clamp(0.01, 0.99)
        down = F.avg_pool2d(t.masks[:, None], 2)[:, 0]
        masks[i, :g] = (down * 2 - 1) * 12 * quality
    return DetectionPredictions(scores=scores, boxes=boxes, presence=presence, masks=masks)


def test_criterion_is_small_for_good_predictions_and_has_gradients() -> None:
    targets = [
        _targets([[0.25, 0.25, 0.25, 0.25], [0.7, 0.6, 0.25, 0.25]]),
        _targets([]),  # negative pair: only presence is supervised
        _targets([[0.5, 0.5, 0.5, 0.5]]),
    ]
    good = detection_loss(_predictions(targets, 1.0), targets, W)
    bad = detection_loss(_predictions(targets, 0.2), targets, W)
    assert good.total.item() < 0.2 * bad.total.item()
    assert good.box_l1 < 1e-6 and good.box_giou < 1e-5 and good.presence < 0.01
    pred = _predictions(targets, 0.5)
    leaf = pred.scores.clone().requires_grad_(True)
    loss = detection_loss(
        DetectionPredictions(leaf, pred.boxes, pred.presence, pred.masks), targets, W
    )
    loss.total.backward()
    assert leaf.grad is not None
    assert leaf.grad[:, 1].abs().sum() == 0, "scores of a negative pair must get no gradient"
    assert leaf.grad[:, 0].abs().sum() > 0


def test_aux_one_to_many_and_shape_checks() -> None:
    targets = [_targets([[0.3, 0.3, 0.2, 0.2]])]
    pred = _predictions(targets, 0.8, layers=3)
    one = detection_loss(pred, targets, W)
    many = detection_loss(pred, targets, W, aux_repeats=3)
    assert one.total.item() != many.total.item()
    assert one.score == many.score  # the final layer stays one-to-one
    with pytest.raises(ValueError):
        DetectionPredictions(pred.scores, pred.boxes[:, :, :4], pred.presence, pred.masks)


# --- data, vocabulary and one real optimisation step on the tiny config -----------------------


def test_world_vocabulary_and_foreign_prompts() -> None:
    tokenizer = world_tokenizer()
    assert tokenizer.vocab_size <= VOCAB_SIZE
    ids = tokenizer(["small red striped star", "person"]).ids
    assert ids.shape == (2, CONTEXT_LENGTH) and (ids[0, :6] > 0).all() and ids[0, 6] == 0
    batch = detection_batch(Split.TRAIN, range(6), ImageConfig(), 3, 1.0, FOREIGN_WORDS)
    assert batch.images.shape == (6, 3, 128, 128) and len(batch.texts) == 18
    assert batch.image_index.tolist() == [i // 3 for i in range(18)]
    foreign = [
        t for t, x in zip(batch.texts, batch.targets, strict=True) if t.split()[0] in FOREIGN_WORDS
    ]
    assert len(foreign) == 12  # every prompt after the first
    assert all(
        len(x) == 0
        for t, x in zip(batch.texts, batch.targets, strict=True)
        if t.split()[0] in FOREIGN_WORDS
    )
    assert float(batch.images.min()) >= -1.0 and float(batch.images.max()) <= 1.0


def test_detection_stream_renders_the_same_batches_in_worker_processes() -> None:
    stream = DetectionStream(Split.TRAIN, 100, 2, ImageConfig(), 2, 0.5, tuple(FOREIGN_WORDS))
    here = list(stream.batches(range(1, 4)))
    there = list(stream.batches(range(1, 4), workers=2))
    assert len(here) == len(there) == 3
    assert torch.equal(here[0].images, detection_batch(
        Split.TRAIN, range(102, 104), ImageConfig(), 2, 0.5, FOREIGN_WORDS).images)  # fmt: skip
    for a, b in zip(here, there, strict=True):
        assert a.texts == b.texts and torch.equal(a.images, b.images)
        assert torch.equal(a.image_index, b.image_index)
        for x, y in zip(a.targets, b.targets, strict=True):
            assert torch.equal(x.boxes, y.boxes) and torch.equal(x.masks, y.masks)


def test_detector_step_updates_weights_and_lowers_the_loss() -> None:
    torch.manual_seed(0)
    config = CONFIGS["tiny"]
    model = Sam3(config)
    tokenizer = world_tokenizer(config.text.context_length)
    world = ImageConfig(world=WorldConfig(height=112, width=112))
    batch = detection_batch(Split.TRAIN, range(4), world, 2)
    tokens = tokenizer(list(batch.texts))
    schedule = DetectorSchedule(steps=10, warmup_steps=1, lr=2e-3)
    optimizer = make_optimizer(model.detector, schedule.lr, schedule.weight_decay)
    before = model.detector.dot_prod_scoring.hs_proj.weight.detach().clone()
    first = detector_step(model.detector, optimizer, batch, tokens, schedule, 0)
    for step in range(1, 6):
        last = detector_step(model.detector, optimizer, batch, tokens, schedule, step)
    assert torch.isfinite(first.total) and last.total.item() < first.total.item()
    assert not torch.equal(before, model.detector.dot_prod_scoring.hs_proj.weight)
    assert lr_factor(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, 0.1) == pytest.approx(1.0)


def test_tracker_step_trains_tracker_and_its_neck_only() -> None:
    torch.manual_seed(0)
    model = Sam3(CONFIGS["tiny"])
    world = ClipConfig(world=WorldConfig(height=112, width=112), num_frames=3)
    clips = [c for c in (clip_targets(clip_sample(Split.TRAIN, i, world)) for i in range(4)) if c]
    assert clips and clips[0].masks.shape[:2] == clips[0].visible.shape
    params = tracker_parameters(model.detector, model.tracker)
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    trunk = model.detector.backbone.vision_backbone.trunk.blocks[0].mlp.fc1.weight.detach().clone()
    neck = model.detector.backbone.vision_backbone.sam2_convs[0].conv_1x1.weight.detach().clone()
    terms = tracker_step(
        model.detector, model.tracker, optimizer, clips[:1], TrackerSchedule(warmup_steps=1), 0
    )
    assert torch.isfinite(terms.total) and 0.0 <= terms.mean_iou <= 1.0
    assert torch.equal(
        trunk, model.detector.backbone.vision_backbone.trunk.blocks[0].mlp.fc1.weight
    )
    assert not torch.equal(
        neck, model.detector.backbone.vision_backbone.sam2_convs[0].conv_1x1.weight
    )


def test_presence_follows_the_prompt_when_overfitting() -> None:
    """Issue 7 check: on fixed images, each with one present and one absent phrase, the presence
    head must learn to tell the two phrases apart (text reaches presence; targets per prompt)."""
    torch.manual_seed(0)
    config = CONFIGS["tiny"]
    detector = Sam3(config).detector
    tokenizer = world_tokenizer(config.text.context_length)
    world = ImageConfig(world=WorldConfig(height=112, width=112))
    chosen = [
        i
        for i in range(40)
        if [len(t) > 0 for t in detection_batch(Split.TRAIN, [i], world, 2).targets]
        == [True, False]
    ][:2]
    batch = detection_batch(Split.TRAIN, chosen, world, 2)  # prompts: present, absent, ...
    tokens = tokenizer(list(batch.texts))
    schedule = DetectorSchedule(steps=40, warmup_steps=5, lr=2e-3, bf16=False)
    optimizer = make_optimizer(detector, schedule.lr, schedule.weight_decay)
    for step in range(schedule.steps):
        detector_step(detector, optimizer, batch, tokens, schedule, step)
    detector.eval()
    with torch.no_grad():
        image = detector.encode_image(batch.images)
        text = detector.encode_text(tokens.ids, tokens.padding_mask)
        out = detector.decode(image, detector.encode_prompt(image, text, None, batch.image_index))
    present, absent = out.presence[0::2], out.presence[1::2]  # same images, different phrases
    assert bool((present > 0.8).all()) and bool((absent < 0.2).all()), out.presence
