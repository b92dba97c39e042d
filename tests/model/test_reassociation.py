"""model/reassociation.py: pairing would-be new detections with lost objects."""

from __future__ import annotations

import torch

from model.reassociation import grow_boxes, reassociate


def square(x0: int, y0: int, size: int = 4, grid: int = 32) -> torch.Tensor:
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


def test_grow_boxes() -> None:
    grown = grow_boxes(torch.tensor([[10.0, 20.0, 14.0, 28.0]]), 0.5)
    assert grown.tolist() == [[8.0, 16.0, 16.0, 32.0]]


def test_mask_iou_pairs_greedily_within_a_concept() -> None:
    dets = torch.stack([square(0, 0), square(10, 10), square(20, 20)])
    groups = torch.tensor([0, 0, 1])
    lost = torch.stack([square(11, 10), square(20, 20), square(1, 0)])
    pairs = reassociate(dets, groups, [0, 1, 2], lost, [0, 0, 1], min_iou=0.1)
    # object 0 <- detection 1 (same concept, overlapping); object 2 (concept 1) overlaps
    # detection 0 of concept 0 only; object 1 (concept 0) sits on detection 2 of concept 1
    assert pairs == {0: 1}


def test_only_would_be_new_detections_are_given_away() -> None:
    dets = torch.stack([square(0, 0), square(10, 10)])
    lost = torch.stack([square(0, 0)])
    assert reassociate(dets, torch.tensor([0, 0]), [1], lost, [0], min_iou=0.1) == {}
    assert reassociate(dets, torch.tensor([0, 0]), [], lost, [0], min_iou=0.1) == {}


def test_box_margin_reaches_an_object_that_moved_since() -> None:
    dets = torch.stack([square(4, 0)])  # the object moved its own width since its last match
    lost = torch.stack([square(0, 0)])
    assert reassociate(dets, torch.tensor([0]), [0], lost, [0], min_iou=0.1) == {}
    assert reassociate(dets, torch.tensor([0]), [0], lost, [0], min_iou=0.1, box_margin=0.5) == {0: 0}
    far = torch.stack([square(20, 20)])
    assert reassociate(far, torch.tensor([0]), [0], lost, [0], min_iou=0.1, box_margin=0.5) == {}


def test_each_detection_and_object_is_used_once() -> None:
    dets = torch.stack([square(0, 0), square(1, 0)])
    lost = torch.stack([square(0, 0), square(2, 0)])
    pairs = reassociate(dets, torch.tensor([0, 0]), [0, 1], lost, [0, 0], min_iou=0.1)
    assert pairs == {0: 0, 1: 1}
