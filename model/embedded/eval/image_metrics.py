"""The SAM 3 paper's image metrics for promptable concept segmentation: pmF1, IL_MCC, cgF1.

A datapoint is one (image, phrase) pair with its ground-truth instance masks and the predicted
masks that passed the score threshold. Per IoU threshold t in 0.50:0.05:0.95, predictions and
ground truth are matched one-to-one by Hungarian matching on mask IoU; a matched pair with
IoU >= t is a true positive.

- pmF1 (positive micro F1): micro-averaged F1 where false positives are counted only on
  datapoints that have ground truth and predictions (localisation quality on positives), and
  false negatives on every datapoint with ground truth. Averaged over the IoU thresholds.
- IL_MCC: Matthews correlation of the image-level decision "predicted anything" vs "has any
  ground truth" (calibration of presence).
- cgF1 = 100 x pmF1 x IL_MCC.

This follows the definitions of the official evaluator (sam3/eval/cgf1_eval.py), written anew
over numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)  # (10,)


def mask_iou_matrix(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """(N, H, W) bool x (M, H, W) bool -> (N, M) float64 IoU; empty-vs-empty counts as 0."""
    if masks_a.shape[1:] != masks_b.shape[1:]:
        raise ValueError(f"mask sizes differ: {masks_a.shape[1:]} vs {masks_b.shape[1:]}")
    hw = int(np.prod(masks_a.shape[1:]))
    a = masks_a.reshape(len(masks_a), hw).astype(np.float32)  # N x HW
    b = masks_b.reshape(len(masks_b), hw).astype(np.float32)  # M x HW
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float64)


def match_ious(iou: np.ndarray) -> np.ndarray:
    """IoUs (min(N, M),) of the one-to-one matching that maximises the total IoU."""
    if iou.size == 0:
        return np.zeros(0)
    rows, cols = linear_sum_assignment(-iou)
    matched: np.ndarray = iou[rows, cols]
    return matched


@dataclass(frozen=True)
class PairOutcome:
    """One (image, phrase) datapoint: counts and true positives (T,) at each IoU threshold."""

    num_gt: int
    num_pred: int
    tp: np.ndarray


def evaluate_pair(
    pred_masks: np.ndarray, gt_masks: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS
) -> PairOutcome:
    """pred (D, H, W) bool (already score-thresholded), gt (G, H, W) bool -> PairOutcome."""
    matched = match_ious(mask_iou_matrix(pred_masks, gt_masks))
    tp = (matched[None, :] >= thresholds[:, None]).sum(axis=1)
    return PairOutcome(num_gt=len(gt_masks), num_pred=len(pred_masks), tp=tp)


@dataclass(frozen=True)
class ImageMetrics:
    """Summary over datapoints; F1 values in [0, 1], cgF1 in [0, 100]."""

    cgf1: float
    il_mcc: float
    pmf1_by_iou: tuple[float, ...]  # at each of IOU_THRESHOLDS: where the mean is lost
    il_precision: float
    il_recall: float
    positives: int  # datapoints with ground truth
    negatives: int

    @property
    def pmf1(self) -> float:
        """pmF1 averaged over the IoU thresholds."""
        return sum(self.pmf1_by_iou) / len(self.pmf1_by_iou)

    @property
    def pmf1_50(self) -> float:
        """pmF1 at IoU 0.5, the first threshold."""
        return self.pmf1_by_iou[0]


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / np.maximum(tp + fn, 1)
    return np.where(
        precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0
    )


def mcc(tp: int, fp: int, tn: int, fn: int) -> float:
    """Matthews correlation coefficient; 0 when any marginal is empty."""
    denom = math.sqrt(float(tp + fp) * float(tp + fn) * float(tn + fp) * float(tn + fn))
    return (tp * tn - fp * fn) / denom if denom > 0 else 0.0


def summarize(outcomes: Sequence[PairOutcome]) -> ImageMetrics:
    if not outcomes:
        raise ValueError("no datapoints to summarise")
    tp = np.sum([o.tp for o in outcomes], axis=0).astype(np.float64)
    fp = np.sum([o.num_pred - o.tp for o in outcomes if o.num_gt and o.num_pred], axis=0)
    fn = np.sum([o.num_gt - o.tp for o in outcomes if o.num_gt], axis=0)
    f1 = _f1(tp, np.asarray(fp, np.float64), np.asarray(fn, np.float64))
    il_tp = sum(1 for o in outcomes if o.num_gt and o.num_pred)
    il_fp = sum(1 for o in outcomes if not o.num_gt and o.num_pred)
    il_tn = sum(1 for o in outcomes if not o.num_gt and not o.num_pred)
    il_fn = sum(1 for o in outcomes if o.num_gt and not o.num_pred)
    il_mcc = mcc(il_tp, il_fp, il_tn, il_fn)
    pmf1 = float(f1.mean())
    return ImageMetrics(
        cgf1=100.0 * pmf1 * il_mcc,
        il_mcc=il_mcc,
        pmf1_by_iou=tuple(float(v) for v in f1),
        il_precision=il_tp / max(il_tp + il_fp, 1),
        il_recall=il_tp / max(il_tp + il_fn, 1),
        positives=il_tp + il_fn,
        negatives=il_tn + il_fp,
    )
