"""Pure box and mask geometry."""

from __future__ import annotations

import pytest
import torch

from model.nn.box_ops import (
    box_iou,
    cxcywh_to_xyxy,
    inverse_sigmoid,
    mask_iou,
    masks_to_boxes,
    xyxy_to_cxcywh,
)


def test_box_formats_round_trip() -> None:
    boxes = torch.rand(5, 3, 4)
    torch.testing.assert_close(xyxy_to_cxcywh(cxcywh_to_xyxy(boxes)), boxes)
    assert cxcywh_to_xyxy(torch.tensor([0.5, 0.5, 0.2, 0.4])).tolist() == pytest.approx(
        [0.4, 0.3, 0.6, 0.7]
    )


def test_box_iou_known_values() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0].tolist() == pytest.approx([1 / 7, 1.0, 0.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0]  # an empty box overlaps nothing


def test_mask_iou_matches_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(4, 9, 7, generator=gen) > 0.5
    b = torch.rand(3, 9, 7, generator=gen) > 0.6
    b[2] = False  # empty mask
    expected = torch.zeros(4, 3)
    for i in range(4):
        for j in range(3):
            union = (a[i] | b[j]).sum()
            expected[i, j] = (a[i] & b[j]).sum() / union if union else 0.0
    torch.testing.assert_close(mask_iou(a, b), expected)
    assert mask_iou(a[:0], b).shape == (0, 3)
    with pytest.raises(ValueError, match="mask sizes differ"):
        mask_iou(a, b[:, :8])


def test_masks_to_boxes_covers_whole_pixels() -> None:
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 2, 3] = True
    masks[1, 1:4, 2:7] = True
    boxes = masks_to_boxes(masks)
    assert boxes.tolist() == [[3, 2, 4, 3], [2, 1, 7, 4], [0, 0, 0, 0]]
    assert masks_to_boxes(masks[:0]).shape == (0, 4)


def test_inverse_sigmoid_inverts_sigmoid_and_clamps() -> None:
    x = torch.linspace(-5, 5, 11)
    torch.testing.assert_close(inverse_sigmoid(x.sigmoid()), x, atol=1e-4, rtol=0)
    edge = inverse_sigmoid(torch.tensor([0.0, 1.0]))
    assert torch.isfinite(edge).all() and edge[0] < -6 and edge[1] > 6
