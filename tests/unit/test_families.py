"""One table of model-family facts, read by the budget, the layouts, the nodes and the trainer."""
import pytest

from realisid_core.branches.budget import working_size_range
from realisid_core.branches.layouts import ControlLayout
from realisid_core.families import FAMILIES, LATENT_SCALE, family, family_name_of_context, to_cells, to_pixels


def test_each_family_states_its_facts_once():
    sd15, sdxl = family("SD1.5"), family("SDXL")
    assert (sd15.context_width, sd15.resolution, sd15.default_working_size) == (768, 512, 64)
    assert (sdxl.context_width, sdxl.adm_width, sdxl.pooled_width, sdxl.resolution) == (2048, 2816, 1280, 1024)
    assert family("SD2").context_width == 1024 and sd15.adm_width is None
    for f in FAMILIES.values():
        assert working_size_range(f.name) is f.working_sizes
        assert to_pixels(f.default_working_size) == f.resolution  # hints at the training resolution
    flux = family("FLUX")
    assert (flux.context_width, flux.adm_width, flux.pooled_width, flux.resolution) == (4096, None, 768, 1024)
    with pytest.raises(ValueError, match="unknown model family SD3"):
        family("SD3")


def test_families_are_named_by_their_context_width_everywhere():
    assert [family_name_of_context(w) for w in (768, 1024, 2048)] == ["SD1.5", "SD2", "SDXL"]
    assert family_name_of_context(4096) == "FLUX" and family_name_of_context(4608) == "context width 4608"
    assert ControlLayout((), (320, 0), 2048).family == "SDXL"


def test_latent_cells_and_pixels():
    assert LATENT_SCALE == 8 and to_pixels(64) == 512 and to_cells(100) == 12 and to_cells(96) == 12
