"""The feather hides the seam where a crop meets the rest of the picture, and only there: a crop edge on
the picture's own border is pasted whole (issue 17: a full-frame portrait lost 24.9 % of InstantID's
residuals to a feather along the frame)."""
import pytest
import torch

from realisid_core.branches.geometry import SquareRegions, border_sides, feather_mask, paste_regions
from realisid_core.branches.local import LocalBranchSettings, plan_local_branch
from realisid_core.people.locations import FaceLocations

LEVELS = (32, 16, 8, 4)  # working size 32
DEFAULT = LocalBranchSettings().feather


def regions(*rows):
    t = torch.tensor(rows, dtype=torch.float64).reshape(-1, 3)
    return SquareRegions(t[:, 0], t[:, 1], t[:, 2])


def residual(faces, n, seed=0):
    return torch.randn(faces, 3, n, n, generator=torch.Generator().manual_seed(seed + n), dtype=torch.float64)


@pytest.mark.parametrize("row", [[0.0, 0.0, 48.0], [-6.0, -6.0, 60.0], [-20.0, -20.0, 88.0]])
def test_a_crop_that_is_the_whole_frame_pastes_unfeathered(row):
    whole = regions(row)
    for n in LEVELS:
        r = residual(1, n)
        feathered = paste_regions(r, whole, 32, 48, 48, DEFAULT)
        torch.testing.assert_close(feathered, paste_regions(r, whole, 32, 48, 48, 0.0), rtol=0, atol=0)


def test_a_full_frame_portrait_through_the_local_branch_keeps_its_residuals():
    """A face filling the frame (InstantID's pipeline runs IdentityNet on the whole picture)."""
    face = FaceLocations(torch.tensor([[0.5, 0.5, 0.7, 0.7]], dtype=torch.float64), 384, 384)
    latent = 48
    feathered = plan_local_branch(face, LocalBranchSettings(32, 1.5, DEFAULT), latent, latent, torch.float64)
    plain = plan_local_branch(face, LocalBranchSettings(32, 1.5, 0.0), latent, latent, torch.float64)
    for n in LEVELS:
        r = residual(1, n, seed=3)
        torch.testing.assert_close(feathered.paste(r), plain.paste(r), rtol=0, atol=0)


def test_a_crop_in_the_middle_still_feathers_on_every_side():
    middle = regions([12.0, 10.0, 24.0])
    assert not bool(border_sides(middle, 48, 48).any())
    out = paste_regions(torch.ones(1, 1, 24, 24, dtype=torch.float64), middle, 24, 48, 48, DEFAULT)[0, 0]
    window = out[10:34, 12:36]
    torch.testing.assert_close(window, feather_mask(24, DEFAULT, dtype=torch.float64))
    assert float(window[0].max()) < 0.2 and float(window[:, -1].max()) < 0.2  # every edge ramps down


def test_a_crop_on_one_border_feathers_only_its_other_sides():
    left = regions([0.0, 10.0, 24.0])
    assert border_sides(left, 48, 48).tolist() == [[True, False, False, False]]
    out = paste_regions(torch.ones(1, 1, 24, 24, dtype=torch.float64), left, 24, 48, 48, DEFAULT)[0, 0]
    window = out[10:34, 0:24]
    assert float(window[12, 0]) == 1.0            # whole along the picture's border
    assert float(window[12, -1]) < 0.2            # ramped where the crop meets the picture
    assert float(window[0, 12]) < 0.2 and float(window[-1, 12]) < 0.2


@pytest.mark.parametrize("feather", [DEFAULT, 0.5])
def test_overlapping_crops_at_the_border_stay_a_partition_of_unity(feather):
    two_same = regions([0.0, 0.0, 30.0], [0.0, 0.0, 30.0])
    one = regions([0.0, 0.0, 30.0])
    several = regions([0.0, 0.0, 30.0], [10.0, 5.0, 38.0], [-4.0, 20.0, 28.0])
    for n in (30, 15, 8):
        torch.testing.assert_close(paste_regions(torch.ones(2, 1, n, n, dtype=torch.float64), two_same, 30, 48, 48,
                                                 feather),
                                   paste_regions(torch.ones(1, 1, n, n, dtype=torch.float64), one, 30, 48, 48, feather))
    for n in (30, 15):
        covered = paste_regions(torch.ones(3, 1, 30, 30, dtype=torch.float64), several, 30, 48, 48, feather)
        assert covered.max().item() <= 1 + 1e-9
        assert covered[0, 0, 0, 0].item() == pytest.approx(1.0)  # the corner two crops share, both whole there
