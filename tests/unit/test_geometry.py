"""Crop and paste of face regions: area, locality, borders, odd sizes, tiny faces, many faces."""
import pytest
import torch.utils._python_dispatch
import torch.utils._pytree
import torch

from realisid_core.branches.geometry import (RegionPlan, SquareRegions, crop_regions, feather_mask, halve, halvings_between,
                                    paste_regions, regions_from_locations)
from realisid_core.people.locations import FaceLocations

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
    locs = FaceLocations(torch.tensor([[cx, cy, 0.3, 0.3]], dtype=torch.float64), 512, 512).validated("t")
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


# --- overlapping faces: no cell receives more than one face's full weight (issue 11 item 4) ---

@pytest.mark.parametrize("feather", [0.0, 0.15])
def test_two_identical_overlapping_faces_paste_one_faces_weight(feather):
    one, two = regions([10.0, 12.0, 24.0]), regions([10.0, 12.0, 24.0], [10.0, 12.0, 24.0])
    for n in SD15_LEVELS:
        single = paste_regions(constant_residual(1, n), one, 64, 64, 64, feather)
        both = paste_regions(constant_residual(2, n), two, 64, 64, 64, feather)
        torch.testing.assert_close(both, single)


@pytest.mark.parametrize("feather", [0.0, 0.15, 0.5])
def test_partly_overlapping_faces_never_exceed_one_faces_weight(feather):
    reg = regions([10.0, 12.0, 24.0], [22.5, 18.3, 20.0], [15.2, 25.0, 16.0])
    for k, n in enumerate(SD15_LEVELS):
        out = paste_regions(constant_residual(3, n), reg, 64, 64, 64, feather)
        assert out.max().item() <= 1 + 1e-9
        # and the faces' own residuals are a weighted average there, not lost
        vals = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)[:, None, None, None].expand(3, 1, n, n)
        out = paste_regions(vals, reg, 64, 64, 64, feather)
        assert out.max().item() <= 3 + 1e-9


def test_faces_that_do_not_overlap_paste_as_before():
    rows = [[4.0, 3.0, 10.0], [20.3, 30.0, 10.0], [40.0, 5.6, 10.0]]  # one side: one resampling for all
    reg = regions(*rows)
    for n in SD15_LEVELS:
        residual = torch.randn(6, 2, n, n, dtype=torch.float64)
        out = paste_regions(residual, reg, 64, 64, 64, 0.15)
        alone = sum(paste_regions(residual.reshape(2, 3, 2, n, n)[:, f], regions(rows[f]), 64, 64, 64, 0.15)
                    for f in range(3))
        torch.testing.assert_close(out, alone)
    plan = RegionPlan(reg, 64, 64, 64, 0.15, torch.float64)
    plan.paste(torch.zeros(3, 1, 8, 8, dtype=torch.float64))
    assert plan._levels[8].blend is None  # nothing to blend: no extra work per step


def test_faces_smaller_than_a_cell_in_one_cell_still_add_their_area_shares():
    reg = regions([24.0, 24.0, 3.0], [28.0, 28.0, 3.0])  # one level-3 cell (8 latent cells), no overlap
    out = paste_regions(constant_residual(2, 8), reg, 64, 64, 64)
    assert out[0, 0].sum().item() * 64 == pytest.approx(18.0, rel=0.01)


def test_blend_is_computed_once_per_level_and_reused():
    plan = RegionPlan(regions([10.0, 12.0, 24.0], [20.0, 16.0, 24.0]), 64, 64, 64, 0.15, torch.float32)
    plan.paste(torch.ones(2, 1, 32, 32))
    level = plan._levels[32]
    assert level.mask.shape == (2, 1, level.resample, level.resample)  # each face's blended weights
    assert level.blend is None or level.blend.shape == (32, 32)
    plan.paste(torch.ones(2, 1, 32, 32))
    assert plan._levels[32] is level


# --- precision and devices (issue 11 item 5) ---

def _smooth(h, w, channels=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.randn(1, channels, h // 4, w // 4, generator=g, dtype=torch.float64),
                                           size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_crop_errs_no_more_than_rounding_its_result(dtype):
    x = _smooth(64, 64).to(dtype)
    reg = regions([10.3, 12.7, 23.9], [30.1, 5.5, 31.0])
    reference = crop_regions(x.double(), reg, 64)          # the same input, computed in float64
    got = crop_regions(x, reg, 64)
    assert got.dtype == dtype
    rounding = (reference.to(dtype).double() - reference).abs().mean()
    assert (got.double() - reference).abs().mean() <= 1.1 * rounding


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_paste_errs_no_more_than_rounding_its_result(dtype):
    reg = regions([10.3, 12.7, 23.9], [30.1, 5.5, 31.0])
    for n in SD15_LEVELS:
        residual = _smooth(4 * n, 4 * n, channels=2 * 3)[..., ::4, ::4].reshape(6, 1, n, n).to(dtype)
        plan = RegionPlan(reg, 64, 64, 64, 0.15, dtype)
        reference = paste_regions(residual.double(), reg, 64, 64, 64, 0.15)
        got = plan.paste(residual)
        assert got.dtype == dtype
        rounding = (reference.to(dtype).double() - reference).abs().mean()
        assert (got.double() - reference).abs().mean() <= 1.1 * rounding + 1e-12


class _Float64Watch(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every operator output that is float64 on a device other than the CPU."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in torch.utils._pytree.tree_flatten(out)[0]:
            if isinstance(o, torch.Tensor) and o.dtype == torch.float64 and o.device.type != "cpu":
                self.seen.append(str(func))
        return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_no_float64_tensor_is_made_on_the_sampling_device(dtype):
    # 'meta' stands in for a GPU or MPS device: every tensor made there is seen, none computed
    reg = regions([10.0, 12.0, 24.0], [20.0, 16.0, 24.0])
    with _Float64Watch() as watch:
        plan = RegionPlan(reg, 64, 64, 64, 0.15, dtype, device="meta")
        crops = plan.crop(torch.empty(2, 4, 64, 64, dtype=dtype, device="meta"))
        pasted = [plan.paste(torch.empty(4, 8, n, n, dtype=dtype, device="meta")) for n in SD15_LEVELS]
        mask = feather_mask(16, 0.2, dtype, device="meta")
    assert watch.seen == []
    assert crops.dtype == dtype and all(p.dtype == dtype for p in pasted) and mask.device.type == "meta"
    tensors = [plan._crop_rows, plan._crop_cols] + [t for lv in plan._levels.values()
                                                    for t in (lv.rows, lv.cols, lv.mask, lv.blend) if t is not None]
    assert {t.dtype for t in tensors} == {torch.float32} and {t.device.type for t in tensors} == {"meta"}
