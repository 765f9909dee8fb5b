"""InstantID's Resampler: proven against diffusers' IP-Adapter Plus image projection (an independent
implementation of the same architecture) with the same weights; sizes read from the shapes."""
import pytest
import torch

from fixtures.instantid_models import RESAMPLER, resampler_state
from realisid_core.errors import RealisIDInputError
from realisid_core.models.projector import project
from realisid_core.people.identity import mean_identity
from realisid_core.models.resampler import resampler_from_state_dict


def diffusers_projection(state):
    """diffusers' own IPAdapterPlusImageProjection, built and loaded by diffusers' own key conversion."""
    loaders = pytest.importorskip("diffusers.loaders.unet")
    return loaders.UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers(
        None, dict(state), low_cpu_mem_usage=False).eval()


def test_published_resampler_equals_diffusers_ip_adapter_plus_projection():
    state = resampler_state(seed=5)
    ours = resampler_from_state_dict(state, "ip-adapter.bin")
    theirs = diffusers_projection(state)
    assert type(theirs).__name__ == "IPAdapterPlusImageProjection"
    # raw antelopev2 embeddings are ~20-30 long; a zero embedding is CFG's unconditional input
    embeddings = torch.cat([torch.randn(3, 512, generator=torch.Generator().manual_seed(1)) * 1.2,
                            torch.zeros(1, 512)])
    with torch.no_grad():
        got, want = ours(embeddings), theirs(embeddings[:, None])
    assert got.shape == (4, 16, 2048)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0], got[1])  # the tokens depend on the embedding


def test_sizes_come_from_the_shapes():
    sizes = dict(dim=256, depth=2, heads=4, num_queries=8, embedding_dim=128, output_dim=320, ff_mult=2)
    ours = resampler_from_state_dict(resampler_state(seed=6, **sizes), "small.bin")
    assert (ours.embedding_width, ours.tokens, ours.width, len(ours.layers)) == (128, 8, 320, 2)
    assert ours.layers[0][0].heads == 4 and ours.layers[0][1][1].out_features == 512
    # diffusers' conversion reads the widths, heads and queries (it assumes depth 4 and feed-forward ×4)
    state = resampler_state(seed=6, **{**sizes, "depth": 4, "ff_mult": 4})
    ours = resampler_from_state_dict(state, "small.bin")
    theirs = diffusers_projection(state)
    x = torch.randn(2, 128)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x[:, None]), rtol=1e-5, atol=1e-5)


def test_project_gives_tokens_of_raw_embeddings_and_the_null_of_a_zero_embedding():
    state = resampler_state(seed=7)
    resampler = resampler_from_state_dict(state, "ip-adapter.bin")
    photos = torch.randn(2, 512, generator=torch.Generator().manual_seed(2))
    raw_lengths = torch.tensor([22.0, 26.0])
    identity = mean_identity(photos, "images", norms=raw_lengths, pack="antelopev2")
    tokens = project(resampler, identity, raw=True)
    with torch.no_grad():
        # InstantID feeds the raw vector: the mean direction at the photos' mean raw length (24)
        torch.testing.assert_close(tokens.tokens, resampler(identity.embeddings * 24.0), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(tokens.null, resampler(torch.zeros(1, 512)), rtol=1e-5, atol=1e-5)
    assert tokens.tokens.shape == (1, RESAMPLER["num_queries"], RESAMPLER["output_dim"])


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("latents"), "has no 'latents'"),
    (lambda s: s.__setitem__("layers.1.0.to_kv.weight", torch.zeros(100, 1280)), "layers.1.0.to_kv.weight"),
    (lambda s: s.__setitem__("layers.0.0.to_q.weight", torch.zeros(1000, 1280)), "whole number of 64-wide heads"),
])
def test_broken_resamplers_are_refused_with_the_reason(change, message):
    state = resampler_state(seed=8)
    change(state)
    with pytest.raises(RealisIDInputError, match=message):
        resampler_from_state_dict(state, "broken.bin")
