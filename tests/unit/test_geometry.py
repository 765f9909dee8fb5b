"""Crop and paste of face regions: area, locality, borders, odd sizes, tiny faces, many faces."""
import pytest
import torch

from realisid_core.geometry import (SquareRegions, crop_regions, feather_mask, halve, halvings_between,
                                    paste_regions, regions_from_locations)
from realisid_core.locations import FaceLocations

SD15_LEVELS = (64, 32, 16, 8)       # crop sizes per level for working size 64 (SD1.5 ControlNet)
SDXL_LEVELS = (128, 64, 32)         # working size 128 (SDXL ControlNet)


def regions(*rows):
    t = torch.tensor(rows, dtype=torch.float64).reshape(-1, 3)
    return SquareRegions(t[:, 0], t[:, 1], t[:, 2])


def constant_residual(faces, size, value=1.0, batch=1, channels=3):
    return torch.full((batch * faces, channels, size, size), value, dtype=torch.float64)


@pytest.mark.parametrize("levels,working", [(SD15_LEVELS, 64), (SDXL_LEVELS, 128)])
def test_constant_residual_integrates_to_region_area_at_every_level(levels, working):
    reg = regions([20.3, 11.7, 23.9])
    for k, n in enumerate(levels):
        out = paste_regions(constant_residual(1, n), reg, working, 64, 64)
        cell_area = 4 ** k
        assert out[0, 0].sum().item() * cell_area == pytest.approx(23.9 ** 2, rel=0.01)


def test_feathered_paste_integrates_to_the_mask_integral():
    reg = regions([10.0, 10.0, 30.0])
    out = paste_regions(constant_residual(1, 64), reg, 64, 64, 64, feather=0.2)
    expected = feather_mask(64, 0.2, dtype=torch.float64).mean().item() * 30 ** 2
    assert out[0, 0].sum().item() == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("feather", [0.0, 0.15, 0.5])
def test_nothing_is_written_outside_the_region(feather):
    reg = regions([17.4, 9.2, 20.5])
    for k, n in enumerate(SD15_LEVELS):
        out = paste_regions(torch.randn(1, 2, n, n, dtype=torch.float64), reg, 64, 64, 64, feather)
        level = reg.at_level(k, 64, n)
        x0, y0, side = float(level.x0), float(level.y0), float(level.side)
        written = out[0].abs().sum(0).nonzero()
        assert len(written) > 0
        assert written[:, 0].min() >= int(y0) and written[:, 0].max() < y0 + side
        assert written[:, 1].min() >= int(x0) and written[:, 1].max() < x0 + side


def test_feather_zeroes_the_region_edge():
    mask = feather_mask(64, 0.25)
    assert mask[32, 32] == 1 and mask[0, 32] < 0.05 and mask[32, 63] < 0.05
    assert torch.equal(feather_mask(16, 0.0), torch.ones(16, 16))


def test_crop_then_paste_reproduces_a_smooth_region():
    h, w = 48, 56
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64),
                            torch.linspace(0, 1, w, dtype=torch.float64), indexing="ij")
    x = torch.stack([torch.sin(3 * xx) + yy, xx * yy])[None]
    reg = regions([12.3, 9.6, 21.7])
    back = paste_regions(crop_regions(x, reg, 64), reg, 64, h, w)
    inner = (slice(None), slice(None), slice(11, 31), slice(14, 33))  # cells fully inside the region
    # pasting pools the residual to at least one pixel per cell first, which blurs by under a cell
    torch.testing.assert_close(back[inner], x[inner], atol=5e-3, rtol=0)


def test_crop_then_paste_reproduces_a_piecewise_constant_region_exactly_when_aligned():
    x = torch.randn(1, 4, 32, 32, dtype=torch.float64)
    reg = regions([8.0, 4.0, 16.0])  # 16 cells → 64 pixels: every cell is 4×4 crop pixels
    crop = crop_regions(x, reg, 16)
    back = paste_regions(crop, reg, 16, 32, 32)
    torch.testing.assert_close(back[..., 4:20, 8:24], x[..., 4:20, 8:24])


def test_crop_is_bilinear_with_sub_cell_precision():
    x = torch.arange(10, dtype=torch.float64).repeat(10, 1)[None, None]  # value = column index
    crop = crop_regions(x, regions([2.25, 2.0, 4.0]), 8)   # pixels of half a cell
    centres = 2.25 + (torch.arange(8, dtype=torch.float64) + 0.5) * 0.5 - 0.5
    torch.testing.assert_close(crop[0, 0, 3], centres)


def test_downsampling_crop_averages_cells():
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    crop = crop_regions(x, regions([0.0, 0.0, 16.0]), 4)
    torch.testing.assert_close(crop[0, 0], torch.nn.functional.avg_pool2d(x, 4)[0, 0])


@pytest.mark.parametrize("h,w", [(63, 65), (17, 9), (1, 1)])
def test_odd_latent_sizes_give_the_unet_shapes(h, w):
    reg = regions([0.2, 0.1, 5.0])
    for k, n in enumerate(SD15_LEVELS):
        out = paste_regions(torch.ones(2, 5, n, n), reg, 64, h, w)
        assert out.shape == (2, 5, halve(h, k), halve(w, k))


@pytest.mark.parametrize("cx,cy", [(0, 0), (1, 0), (0, 1), (1, 1), (0.5, 0), (0.5, 1), (0, 0.5), (1, 0.5)])
def test_faces_at_borders_and_corners_are_clipped(cx, cy):
    locs = FaceLocations(torch.tensor([[cx, cy, 0.3, 0.3]], dtype=torch.float64), 512, 512).validated("t", "t")
    reg = regions_from_locations(locs, 64, 64)
    x = torch.randn(1, 4, 64, 64)
    crop = crop_regions(x, reg, 64)
    assert torch.isfinite(crop).all()
    out = paste_regions(torch.ones(1, 4, 64, 64, dtype=torch.float64), reg, 64, 64, 64)
    inside = sum(max(0.0, min(64.0, lo + float(reg.side)) - max(0.0, lo)) for lo in [float(reg.x0)]) * \
        sum(max(0.0, min(64.0, lo + float(reg.side)) - max(0.0, lo)) for lo in [float(reg.y0)])
    assert out[0, 0].sum().item() == pytest.approx(inside, rel=0.01)


def test_face_smaller_than_a_deep_cell_contributes_its_area_share():
    reg = regions([29.0, 30.0, 3.0])                # 3 latent cells: 3/8 of one cell at level 3
    out = paste_regions(constant_residual(1, 8), reg, 64, 64, 64)
    assert out.shape[-1] == 8
    assert (out[0, 0] > 0).sum() <= 4               # touches at most the cells it overlaps
    assert out[0, 0].sum().item() * 64 == pytest.approx(9.0, rel=0.01)


@pytest.mark.parametrize("faces", [1, 3, 8])
def test_many_faces_sum_and_keep_their_order(faces):
    batch = 2
    rows = [[4.0 + 7 * i, 3.0 + 6 * i, 6.0] for i in range(faces)]
    reg = regions(*rows)
    values = torch.arange(1, batch * faces + 1, dtype=torch.float64)  # crop i carries value i+1
    residual = values[:, None, None, None].expand(batch * faces, 1, 16, 16)
    out = paste_regions(residual, reg, 16, 64, 64)
    for b in range(batch):
        for f, (x0, y0, side) in enumerate(rows):
            cy, cx = int(y0 + side / 2), int(x0 + side / 2)
            assert out[b, 0, cy, cx].item() == pytest.approx(b * faces + f + 1)
    assert out.sum().item() == pytest.approx(sum(values.tolist()) * 36, rel=0.01)


def test_halvings_between_follows_ceil():
    assert [halve(65, k) for k in range(4)] == [65, 33, 17, 9]
    assert halvings_between(64, 8) == 3 and halvings_between(72, 9) == 3
    with pytest.raises(ValueError):
        halvings_between(64, 12)
