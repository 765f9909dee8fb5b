"""Identities from embeddings: averaging, unit norm, joining, one identity per face location."""
import pytest
import torch

from realisid_core.errors import RealisIDInputError
from realisid_core.people.identity import Identity, join_identities, mean_identity


def test_averaged_identity_is_unit_norm_and_between_its_photos():
    g = torch.Generator().manual_seed(0)
    person = torch.randn(512, generator=g)
    photos = person + 0.3 * torch.randn(4, 512, generator=g)  # unnormalised, as a recogniser outputs them
    identity = mean_identity(photos * torch.tensor([[1.0], [5.0], [0.2], [3.0]]), "images")
    assert identity.embeddings.shape == (1, 512)
    assert float(identity.embeddings.norm()) == pytest.approx(1.0, abs=1e-6)
    unit = photos / photos.norm(dim=-1, keepdim=True)
    # every photo counts equally, whatever its embedding's length
    expected = unit.mean(0) / unit.mean(0).norm()
    assert torch.allclose(identity.embeddings[0], expected, atol=1e-6)
    assert float(identity.embeddings[0] @ (person / person.norm())) > float((unit @ (person / person.norm())).min())


def test_no_embedding_and_opposite_embeddings_are_errors():
    with pytest.raises(RealisIDInputError, match="^input 'images'.*Fix:"):
        mean_identity(torch.zeros(0, 512), "images")
    v = torch.randn(1, 512)
    with pytest.raises(RealisIDInputError, match="cancel out"):
        mean_identity(torch.cat([v, -v]), "images")


def test_joined_identities_keep_person_order():
    from realisid_core.models.projector import IDProjector, project
    people = [mean_identity(torch.randn(2, 512), "i") for _ in range(3)]
    joined = join_identities(people)
    assert joined.count == 3 and torch.equal(joined.embeddings[1], people[1].embeddings[0])
    tokens = project(IDProjector(512, 4, 32), joined)
    assert tokens.tokens.shape == (3, 4, 32) and tokens.null.shape == (1, 4, 32)
    assert torch.equal(tokens.person(1).tokens, tokens.tokens[1:2])
    with pytest.raises(RealisIDInputError, match="different embedding widths"):
        join_identities([people[0], Identity(torch.ones(1, 128))])
