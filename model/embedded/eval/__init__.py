"""Evaluation metrics: SAM 3 image metrics (pmF1, IL_MCC, cgF1) and video tracking metrics."""

from model.embedded.eval.image_metrics import (
    IOU_THRESHOLDS,
    ImageMetrics,
    PairOutcome,
    evaluate_pair,
    mask_iou_matrix,
    summarize,
)
from model.embedded.eval.video_metrics import FrameObjects, VideoCounts, count_clip

__all__ = [
    "IOU_THRESHOLDS",
    "FrameObjects",
    "ImageMetrics",
    "PairOutcome",
    "VideoCounts",
    "count_clip",
    "evaluate_pair",
    "mask_iou_matrix",
    "summarize",
]
