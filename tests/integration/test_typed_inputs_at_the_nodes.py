"""Node-level checks of what the artist hands the pack: an Identity Batch mixing face-analysis packs, a
Person box with words in it (the engine's rules, seen through the nodes)."""
import pytest
import torch

from fixtures.host import host_node, pack_module


def identity(pack, seed):
    core = pack_module("realisid_core.people.identity")
    return core.mean_identity(torch.randn(1, 512, generator=torch.Generator().manual_seed(seed)), "images",
                              norms=[21.0], pack=pack)


def test_an_identity_batch_mixing_packs_is_refused_and_one_pack_is_kept():
    error = pack_module("realisid_core.errors").RealisIDInputError
    batch = host_node("RealisID_IdentityBatch")
    joined = batch.join(identity("antelopev2", 1), identity_2=identity("antelopev2", 2))[0]
    assert joined.count == 2 and joined.pack == "antelopev2"
    with pytest.raises(error, match=r"^RealisID Identity Batch: input 'identity_1': the identities were made with "
                                    r"different face-analysis packs \(identity 1: antelopev2, identity 2: buffalo_l\)"):
        batch.join(identity("antelopev2", 1), identity_2=identity("buffalo_l", 2))


def test_a_person_box_with_words_is_a_clear_error():
    error = pack_module("realisid_core.errors").RealisIDInputError
    person = host_node("RealisID_Person")
    with pytest.raises(error, match=r"input 'box': 'left' is not a number.*Fix: write the face box as 4 numbers"):
        person.make(1, "left 0.4 0.3 0.3", 1.0)
    made = person.make(1, "0.5, 0.4, 0.3, 0.3", 1.0)[0]
    assert made.place.box == (0.5, 0.4, 0.3, 0.3)
