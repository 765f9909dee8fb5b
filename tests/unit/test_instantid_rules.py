"""InstantID's rules and its attention state in the engine, without a host: who may be given to it, what it is
checked against, and the shared state every layer's patch reads."""
import pytest
import torch

from realisid_core.branches.identity_attention import IdentityAttention, check_masks
from realisid_core.errors import RealisIDInputError
from realisid_core.models.description import INSTANTID_IDENTITYNET, BranchDescription
from realisid_core.models.instantid import (InstantIDAdapter, check_identitynet, check_layers, people_identity,
                                            uncond_noise_embedding)
from realisid_core.models.resampler import Resampler
from realisid_core.people.identity import Identity, IdentityTokens
from realisid_core.people.locations import FaceLocations
from realisid_core.people.people import People, Person, Place


def person(identity=None, tokens=None, box=(0.5, 0.5, 0.2, 0.2)):
    return Person(Place(box, (256, 256), "test"), identity=identity, tokens=tokens)


def identity(seed=0, pack="antelopev2"):
    v = torch.randn(1, 512, generator=torch.Generator().manual_seed(seed))
    return Identity(v / v.norm(), torch.tensor([20.0]), pack)


def test_instantid_takes_antelopev2_identities_in_person_order():
    joined = people_identity(People((person(identity(1)), person(identity(2), box=(0.2, 0.2, 0.1, 0.1)))))
    assert joined.count == 2 and joined.pack == "antelopev2"
    with pytest.raises(RealisIDInputError, match="^input 'people': person 1 was given ready identity tokens"):
        people_identity(People((person(tokens=IdentityTokens(torch.zeros(1, 16, 2048))),)))
    with pytest.raises(RealisIDInputError, match="person 1 has no identity"):
        people_identity(People((person(),)))
    with pytest.raises(RealisIDInputError, match="made with the buffalo_l pack"):
        people_identity(People((person(identity(1, "buffalo_l")),)))


def test_only_instantids_keypoint_format_is_taken_for_identitynet():
    assert check_identitynet(None) is INSTANTID_IDENTITYNET
    own = BranchDescription("local", "SDXL", hint_format="realisid-pose-v1-68", working_size=128, margin=1.6)
    with pytest.raises(RealisIDInputError, match="^input 'control_net': this ControlNet .* never saw"):
        check_identitynet(own)


def test_the_unets_layers_must_match_the_adapters_one_for_one():
    adapter = InstantIDAdapter(Resampler(dim=64, depth=1, heads=2, num_queries=4, output_dim=32), [32, 64], 32)
    check_layers(adapter, [32, 64], [32, 32])
    with pytest.raises(RealisIDInputError, match="^input 'instantid': the adapter is made for a U-Net with 2"):
        check_layers(adapter, [32, 64, 64], [32, 32, 32])


def test_the_shared_state_refuses_places_of_another_shape_and_runs_in_its_sigma_window():
    locations = FaceLocations(torch.tensor([[0.5, 0.5, 0.2, 0.2]], dtype=torch.float64), 256, 256, ("test",))
    shared = IdentityAttention([], locations, torch.ones(1), 1.5, None, 0.8, sigma_start=10.0, sigma_end=1.0)
    assert shared.active(5.0) and shared.active(None) and not shared.active(0.5) and not shared.active(11.0)
    shared.check_shape(32, 32)
    with pytest.raises(RealisIDInputError, match="^input 'people': the faces' places come from test"):
        shared.check_shape(32, 64)
    assert shared.regions(4, 4, "cpu", torch.float32).index[0].numel() > 0
    assert __import__("copy").deepcopy(shared) is shared  # shared, never copied with ComfyUI's model options


def test_masks_are_one_per_person_or_one_for_everybody():
    assert check_masks(None, 2) is None
    assert check_masks(torch.ones(64, 64), 2).shape == (1, 64, 64)
    with pytest.raises(RealisIDInputError, match="^input 'mask': 3 masks were given for 2 people"):
        check_masks(torch.ones(3, 64, 64), 2)


def test_the_uncond_noise_vector_is_cubiqs():
    person = identity(4)
    raw = person.raw()
    torch.manual_seed(int(torch.sum(raw).item()) % 1000000007)  # cubiq's ComfyUI_InstantID, ApplyInstantID
    expected = 0.35 * torch.rand_like(raw)
    assert torch.equal(uncond_noise_embedding(person, 0.35), expected)
