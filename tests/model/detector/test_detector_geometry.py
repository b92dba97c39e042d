"""Exemplar encoder: ROI align against torchvision's algorithm, token layout, padding, points."""

from __future__ import annotations

import math

import pytest
import torch

from model.detector.geometry import GeometryEncoder, GeometryPrompt, roi_align


def _reference_roi_align(
    features: torch.Tensor, box: list[float], batch: int, out: int
) -> torch.Tensor:
    """Line-by-line transcription of torchvision's `roi_align_forward_kernel_impl` (aligned=False,
    spatial_scale=1, sampling_ratio=-1) with Python scalars: the test's independent oracle."""
    _, channels, height, width = features.shape
    x0, y0, x1, y1 = box
    roi_w, roi_h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    bin_w, bin_h = roi_w / out, roi_h / out
    grid_h, grid_w = math.ceil(roi_h / out), math.ceil(roi_w / out)
    count = max(grid_h * grid_w, 1)
    fmap = features[batch]
    result = torch.zeros(channels, out, out, dtype=torch.float64)

    def bilinear(y: float, x: float) -> torch.Tensor:
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return torch.zeros(channels, dtype=torch.float64)
        y, x = max(y, 0.0), max(x, 0.0)
        y_low, x_low = int(y), int(x)
        if y_low >= height - 1:
            y_high = y_low = height - 1
            y = float(y_low)
        else:
            y_high = y_low + 1
        if x_low >= width - 1:
            x_high = x_low = width - 1
            x = float(x_low)
        else:
            x_high = x_low + 1
        ly, lx = y - y_low, x - x_low
        hy, hx = 1 - ly, 1 - lx
        v = fmap.double()
        return (
            hy * hx * v[:, y_low, x_low]
            + hy * lx * v[:, y_low, x_high]
            + ly * hx * v[:, y_high, x_low]
            + ly * lx * v[:, y_high, x_high]
        )

    for ph in range(out):
        for pw in range(out):
            acc = torch.zeros(channels, dtype=torch.float64)
            for iy in range(grid_h):
                y = y0 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = x0 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    acc += bilinear(y, x)
            result[:, ph, pw] = acc / count
    return result.float()


def test_roi_align_matches_torchvision_algorithm() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 9, 11, generator=gen)
    boxes = [
        [1.3, 2.2, 7.9, 8.4],  # ordinary
        [0.0, 0.0, 11.0, 9.0],  # the whole map: several samples per bin
        [4.2, 4.1, 4.6, 4.3],  # smaller than a pixel: roi side clamped to 1
        [-3.0, -2.5, 3.0, 12.0],  # partly outside: samples beyond the border are zero
        [9.8, 7.7, 10.9, 8.9],  # at the far border: clamped to the last pixel
    ]
    index = torch.tensor([0, 1, 1, 0, 1])
    got = roi_align(features, torch.tensor(boxes), index, 4)
    assert got.shape == (5, 3, 4, 4)
    for k, (box, b) in enumerate(zip(boxes, index.tolist(), strict=True)):
        torch.testing.assert_close(
            got[k], _reference_roi_align(features, box, b, 4), atol=1e-5, rtol=0
        )
    assert roi_align(features, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 4).shape == (
        0,
        3,
        4,
        4,
    )


@pytest.fixture
def encoder() -> GeometryEncoder:
    torch.manual_seed(0)
    return GeometryEncoder(16, 2, 32, 2, roi_size=3).eval()


def _image(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, 16, 6, 6, generator=gen), torch.randn(1, 16, 6, 6, generator=gen)


def test_text_only_prompt_is_one_cls_token(encoder: GeometryEncoder) -> None:
    image, pos = _image()
    with torch.inference_mode():
        tokens, padding = encoder(GeometryPrompt.empty(3), image, pos, torch.tensor([0, 1, 1]))
    assert tokens.shape == (3, 1, 16) and padding.tolist() == [[False]] * 3
    torch.testing.assert_close(tokens[1], tokens[2])  # same image, same (empty) prompt
    assert not torch.allclose(tokens[0], tokens[1])  # the cls token looks at its own image


def test_padding_does_not_change_valid_tokens(encoder: GeometryEncoder) -> None:
    image, pos = _image()
    box = torch.tensor([[0.4, 0.5, 0.3, 0.2]])
    alone = GeometryPrompt.from_boxes([box], [torch.tensor([True])])
    padded = GeometryPrompt.from_boxes(
        [box, torch.tensor([[0.5, 0.5, 0.9, 0.9], [0.1, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2]])],
        [torch.tensor([True]), torch.tensor([False, True, True])],
    )
    with torch.inference_mode():
        tokens_alone, _ = encoder(alone, image[:1], pos)
        tokens_padded, padding = encoder(padded, image[:1], pos, torch.tensor([0, 0]))
    assert padding[0].tolist() == [False, True, True, False]  # box, 2 padding slots, cls
    valid = ~padding[0]
    torch.testing.assert_close(tokens_padded[0, valid], tokens_alone[0], atol=1e-5, rtol=0)


def test_negative_label_changes_the_prompt(encoder: GeometryEncoder) -> None:
    image, pos = _image(1)
    box = [torch.tensor([[0.5, 0.5, 0.4, 0.4]])]
    with torch.inference_mode():
        positive, _ = encoder(GeometryPrompt.from_boxes(box, [torch.tensor([True])]), image, pos)
        negative, _ = encoder(GeometryPrompt.from_boxes(box, [torch.tensor([False])]), image, pos)
    assert not torch.allclose(positive, negative)


def test_point_pooling_samples_the_normed_map_at_the_point(encoder: GeometryEncoder) -> None:
    """With the other point terms zeroed, a point at a pixel centre pools exactly that pixel."""
    image, pos = _image(1)
    with torch.no_grad():
        for proj in (encoder.points_direct_project, encoder.points_pos_enc_project):
            proj.weight.zero_()
            proj.bias.zero_()
        encoder.label_embed.weight.zero_()
    row, col = 2, 4
    points = torch.tensor([[[(col + 0.5) / 6, (row + 0.5) / 6]]])
    flags = torch.zeros(1, 1, dtype=torch.bool)
    empty = GeometryPrompt.empty(1)
    prompt = GeometryPrompt(empty.boxes, empty.box_labels, empty.box_padding, points, flags, flags)
    with torch.inference_mode():
        normed = encoder.img_pre_norm(image.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        got = encoder._encode_points(prompt, normed, None)
        tokens, padding = encoder(prompt, image, pos)
        expected = encoder.points_pool_project(normed[0, :, row, col])
    torch.testing.assert_close(got[0, 0], expected)
    assert tokens.shape == (1, 2, 16) and not padding.any()  # point + cls
