"""The local branch on FLUX's token grid: crops of the latent, residual tokens pasted onto the 2×2 patch grid."""
import pytest
import torch
from einops import rearrange

from realisid_core.branches.geometry import RegionPlan, SquareRegions
from realisid_core.branches.tokens import (TokenPlan, distinct, grid_to_tokens, halved, patch_grid, run_token_branch,
                                           tokens_to_grid)


def flux_tokens(x):
    """FLUX's own patchify (comfy/ldm/flux/model.py process_img)."""
    return rearrange(x, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=2, pw=2)


def plan(x0, y0, side, size, height, width, feather=0.0, dtype=torch.float64):
    regions = SquareRegions(torch.tensor(x0, dtype=torch.float64), torch.tensor(y0, dtype=torch.float64),
                            torch.tensor(side, dtype=torch.float64))
    return TokenPlan(RegionPlan(regions, size, height, width, feather, dtype))


def test_token_order_is_fluxs_row_major_patch_order():
    x = torch.randn(2, 16, 6, 8)
    grid = tokens_to_grid(flux_tokens(x), 3, 4)  # [2, 64, 3, 4]: token (i, j) is the patch at cells (2i, 2j)
    for i in range(3):
        for j in range(4):
            assert torch.equal(grid[:, :, i, j].reshape(2, 16, 2, 2), x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2])
    assert torch.equal(grid_to_tokens(grid), flux_tokens(x))


def test_odd_latents_have_fluxs_padded_grid():
    assert [patch_grid(n) for n in (7, 8, 9)] == [4, 4, 5]
    p = plan([0.0], [0.0], [4.0], 4, 9, 7)
    assert p.paste(torch.zeros(1, 4, 3)).shape == (1, 5 * 4, 3)


def test_a_crop_that_is_the_whole_latent_maps_tokens_one_to_one():
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    p = plan([0.0], [0.0], [8.0], 8, 8, 8)
    assert torch.allclose(p.crop(x), x, atol=1e-12)
    tokens = torch.randn(1, 16, 5, dtype=torch.float64)
    assert torch.allclose(p.paste(tokens), tokens, atol=1e-12)


def test_a_face_moved_by_two_cells_moves_its_tokens_by_one_patch():
    tokens = torch.randn(1, 4 * 4, 3, dtype=torch.float64)
    a = tokens_to_grid(plan([2.0], [4.0], [8.0], 8, 16, 16).paste(tokens), 8, 8)
    b = tokens_to_grid(plan([4.0], [6.0], [8.0], 8, 16, 16).paste(tokens), 8, 8)
    assert torch.allclose(a[..., :7, :7], b[..., 1:, 1:], atol=1e-12)
    assert torch.allclose(a[..., 2:6, 1:5], tokens_to_grid(tokens, 4, 4), atol=1e-12)  # x cells 2..10 → patches 1..5


def test_a_constant_residual_integrates_to_the_regions_area_in_patches():
    p = plan([3.3], [5.1], [5.0], 8, 16, 16)  # a small face up-sampled to 8 cells: 2.5 patches on a side
    pasted = p.paste(torch.ones(1, 16, 2, dtype=torch.float64))
    assert pasted.sum(1)[0, 0].item() == pytest.approx(2.5 ** 2)


def test_repeated_residuals_are_pasted_once_and_stay_shared():
    x = torch.randn(2, 16, 16, 16)
    calls = []

    def run(crops, start):
        calls.append(len(crops))
        a = torch.randn(len(crops), 16, 4)
        b = torch.randn(len(crops), 16, 4)
        return {"input": [a, a, b, b, b], "output": [b] * 3}

    p = plan([1.0, 6.0], [2.0, 7.0], [6.0, 8.0], 8, 16, 16, dtype=torch.float32)
    out = run_token_branch(x, p, run, max_crops_per_forward=3)
    assert calls == [3, 1]
    assert out["input"][0] is out["input"][1] and out["input"][2] is out["input"][4]
    assert out["input"][0].shape == (2, 64, 4)
    assert distinct([None, b := torch.zeros(1), b])[1] == [None, 0, 0]


def test_chunks_and_strengths_give_what_one_forward_with_scaled_residuals_gives():
    torch.manual_seed(0)
    weight = torch.randn(16 * 4, 5)
    x = torch.randn(2, 16, 12, 12)

    def run(crops, start):
        r = flux_tokens(crops) @ weight
        return {"input": [r, r], "output": [r * 2]}

    p = plan([0.0, 5.0], [1.0, 4.0], [7.0, 6.0], 8, 12, 12, feather=0.2, dtype=torch.float32)
    scale = torch.tensor([1.0, 0.5, 1.0, 0.5])
    whole = run_token_branch(x, p, run, scale=scale)
    chunked = run_token_branch(x, p, run, max_crops_per_forward=1, scale=scale)
    for key in whole:
        for a, b in zip(whole[key], chunked[key]):
            assert torch.allclose(a, b, atol=1e-5)
    half = run_token_branch(x, p, lambda c, s: {k: [t * 0.5 for t in v] for k, v in run(c, s).items()})
    unscaled = run_token_branch(x, p, run)
    assert not torch.allclose(whole["output"][0], unscaled["output"][0])
    assert torch.allclose(p.paste(torch.zeros(4, 16, 5)), torch.zeros(2, 36, 5))
    assert half["input"][0].shape == unscaled["input"][0].shape


def test_the_working_size_must_be_whole_patches():
    with pytest.raises(ValueError, match="whole number"):
        plan([0.0], [0.0], [7.0], 7, 8, 8)


def test_halved_regions_are_half_the_latent_regions():
    r = halved(SquareRegions(torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([5.0])))
    assert (r.x0.item(), r.y0.item(), r.side.item()) == (1.0, 1.5, 2.5)
