"""Image metrics (pmF1, IL_MCC, cgF1) and video tracking metrics on hand-built cases."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pytest

from bench.switches import switch_frames
from model.embedded.eval import (
    IOU_THRESHOLDS,
    FrameObjects,
    count_clip,
    evaluate_pair,
    mask_iou_matrix,
    summarize,
)
from model.embedded.eval.runner import Detect, Prediction, evaluate_clips, evaluate_images
from model.embedded.world import ClipConfig, Phrase, Split, clip_sample, image_sample


def _box_mask(x0: int, y0: int, x1: int, y1: int, hw: tuple[int, int] = (20, 20)) -> np.ndarray:
    m = np.zeros(hw, bool)
    m[y0:y1, x0:x1] = True
    return m


A = _box_mask(0, 0, 4, 4)  # 16 px
B = _box_mask(10, 10, 14, 14)
A_HALF = _box_mask(0, 0, 4, 8)  # contains A: IoU(A, A_HALF) = 16 / 32 = 0.5
EMPTY = np.zeros((0, 20, 20), bool)


def test_mask_iou_matrix() -> None:
    iou = mask_iou_matrix(np.stack([A, B]), np.stack([A, A_HALF, np.zeros_like(A)]))
    np.testing.assert_allclose(iou, [[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    assert mask_iou_matrix(EMPTY, np.stack([A])).shape == (0, 1)
    with pytest.raises(ValueError):
        mask_iou_matrix(np.stack([A]), np.zeros((1, 5, 5), bool))


def test_perfect_predictions_give_cgf1_100() -> None:
    outcomes = [
        evaluate_pair(np.stack([A, B]), np.stack([B, A])),  # order does not matter
        evaluate_pair(EMPTY, EMPTY),  # true negative
    ]
    m = summarize(outcomes)
    assert m.pmf1 == pytest.approx(1.0) and m.il_mcc == pytest.approx(1.0)
    assert m.cgf1 == pytest.approx(100.0)
    assert (m.positives, m.negatives) == (1, 1)


def test_localisation_quality_is_averaged_over_iou_thresholds() -> None:
    outcome = evaluate_pair(np.stack([A_HALF]), np.stack([A]))
    assert outcome.tp.tolist() == [1] + [0] * (len(IOU_THRESHOLDS) - 1)
    m = summarize([outcome, evaluate_pair(EMPTY, EMPTY)])
    assert m.pmf1_50 == pytest.approx(1.0)
    assert m.pmf1_by_iou == pytest.approx([1.0] + [0.0] * (len(IOU_THRESHOLDS) - 1))
    assert m.pmf1 == pytest.approx(0.1)
    assert m.cgf1 == pytest.approx(10.0)


def test_false_positives_on_negatives_hurt_only_presence() -> None:
    positive = evaluate_pair(np.stack([A]), np.stack([A]))
    clean = summarize([positive, evaluate_pair(EMPTY, EMPTY), evaluate_pair(EMPTY, EMPTY)])
    noisy = summarize([positive, evaluate_pair(np.stack([B]), EMPTY), evaluate_pair(EMPTY, EMPTY)])
    assert noisy.pmf1 == clean.pmf1 == pytest.approx(1.0)
    # TP=1, FP=1, TN=1, FN=0 -> MCC = 1 / sqrt(2 * 1 * 2 * 1) = 0.5
    assert noisy.il_mcc == pytest.approx(0.5)
    assert noisy.il_precision == pytest.approx(0.5) and noisy.il_recall == pytest.approx(1.0)


def test_misses_and_extra_predictions_on_positives() -> None:
    # one hit, one extra prediction on a positive, one missed positive datapoint
    m = summarize(
        [
            evaluate_pair(np.stack([A, B]), np.stack([A])),
            evaluate_pair(EMPTY, np.stack([B])),
            evaluate_pair(EMPTY, EMPTY),
        ]
    )
    # TP=1, FP=1, FN=1 at every threshold -> F1 = 0.5; presence TP=1, FN=1, TN=1 -> MCC 0.5
    assert m.pmf1 == pytest.approx(0.5)
    assert m.il_mcc == pytest.approx(0.5)
    assert m.cgf1 == pytest.approx(25.0)
    with pytest.raises(ValueError):
        summarize([])


def _frame(ids: list[int], masks: list[np.ndarray]) -> FrameObjects:
    return FrameObjects(np.array(ids, np.int64), np.stack(masks) if masks else EMPTY)


def test_clean_tracks_have_no_switches() -> None:
    truth = [_frame([1, 2], [A, B])] * 5
    pred = [_frame([7, 9], [B, A])] * 5
    c = count_clip(truth, pred)
    assert (c.id_switches, c.fragmentations, c.fragmented_tracks) == (0, 0, 0)
    assert c.object_frames == 10 and c.recall == 1.0 and c.mean_iou == 1.0
    assert (c.presence_tp, c.presence_fp, c.presence_fn, c.presence_tn) == (5, 0, 0, 0)


def test_swapped_ids_count_as_switches_and_fragmented_tracks() -> None:
    truth = [_frame([1, 2], [A, B])] * 4
    pred = [_frame([7, 9], [A, B])] * 2 + [_frame([7, 9], [B, A])] * 2
    c = count_clip(truth, pred)
    assert c.id_switches == 2 and c.fragmented_tracks == 2 and c.gt_tracks == 2
    assert c.id_switches_per_1k == pytest.approx(1000 * 2 / 8)
    assert switch_frames(truth, pred) == [2, 2]  # bench/switches.py: both on frame 2
    assert switch_frames(truth, pred[:2] * 2) == []


def test_gaps_occlusion_and_presence() -> None:
    truth = [
        _frame([1], [A]),
        _frame([1], [A]),  # tracker misses it: a gap while visible
        _frame([1], [A]),  # matched again -> one fragmentation
        _frame([], []),  # fully occluded: no gap counted
        _frame([1], [A]),
        _frame([], []),  # concept absent, tracker reports something -> presence FP
    ]
    pred = [
        _frame([3], [A]),
        _frame([], []),
        _frame([3], [A_HALF]),
        _frame([], []),
        _frame([3], [A]),
        _frame([3], [B]),
    ]
    c = count_clip(truth, pred)
    assert c.fragmentations == 1 and c.id_switches == 0
    assert (c.presence_tp, c.presence_fn, c.presence_tn, c.presence_fp) == (3, 1, 1, 1)
    assert c.matched == 3 and c.mean_iou == pytest.approx((1 + 0.5 + 1) / 3)
    assert c.unmatched_predictions == 1
    total = c + c
    assert total.fragmentations == 2 and total.frames == 12
    with pytest.raises(ValueError):
        count_clip(truth, pred[:-1])


# --- evaluation loops with oracle and broken predictors --------------------------------------


def _oracle(split: Split) -> Detect:
    """Perfect detector for `split`: re-draws the sample it is shown (looked up by image bytes)."""
    index = {
        image_sample(split, i, num_prompts=2).scene.image.tobytes(): image_sample(
            split, i, num_prompts=2
        )
        for i in range(12)
    }

    def detect(image: np.ndarray, texts: Sequence[str]) -> list[Prediction]:
        scene = index[image.tobytes()].scene
        out = []
        for text in texts:
            idx = scene.targets(Phrase.parse(text))
            out.append(Prediction(masks=scene.masks[idx], scores=np.ones(len(idx))))
        return out

    return detect


def test_image_loop_scores_an_oracle_100_and_a_blind_detector_0() -> None:
    m = evaluate_images(_oracle(Split.HELD_OUT_SEEDS), Split.HELD_OUT_SEEDS, 12)
    assert m.cgf1 == pytest.approx(100.0) and m.positives > 0 and m.negatives > 0

    def blind(image: np.ndarray, texts: Sequence[str]) -> list[Prediction]:
        h, w = image.shape[:2]
        return [Prediction(np.zeros((0, h, w), bool), np.zeros(0)) for _ in texts]

    assert evaluate_images(blind, Split.HELD_OUT_SEEDS, 12).cgf1 == 0.0


def test_clip_loop_with_an_oracle_tracker() -> None:
    config = ClipConfig(num_frames=6)
    clips = {
        clip_sample(Split.HELD_OUT_SEEDS, i, config).frames[0].image.tobytes(): i for i in range(2)
    }

    def track(frames: Iterable[np.ndarray], text: str) -> Iterator[FrameObjects]:
        frames = list(frames)
        clip = clip_sample(Split.HELD_OUT_SEEDS, clips[frames[0].tobytes()], config)
        phrase = Phrase.parse(text)
        for f in clip.frames:
            idx = f.targets(phrase)
            yield FrameObjects(ids=f.ids[idx] + 100, masks=f.masks[idx])

    result = evaluate_clips(track, Split.HELD_OUT_SEEDS, 2, config)
    assert result.positive.id_switches == 0 and result.positive.recall == 1.0
    assert (
        result.negative.presence_fp == 0 and result.negative.presence_tn == result.negative.frames
    )
    assert result.frames == 2 * 2 * 6 and result.fps > 0
