"""An identity carries the insightface pack (recogniser) that made it through mean, join, batch and person;
mixing packs is refused; RealisID's projector refuses identities of another pack than it was trained on."""
import json

import pytest
import torch
from safetensors.torch import save_file

from realisid_core.errors import RealisIDInputError
from realisid_core.models.projector import IDProjector, load_projector, project
from realisid_core.people.identity import join_identities, mean_identity
from realisid_core.people.locations import parse_locations
from realisid_core.people.people import people_from_locations


def person(pack, seed=0):
    g = torch.Generator().manual_seed(seed)
    return mean_identity(torch.randn(2, 512, generator=g), "images", norms=[20.0, 22.0], pack=pack)


def test_the_pack_survives_mean_join_and_each_person():
    joined = join_identities([person("antelopev2", 1), person("antelopev2", 2)])
    assert joined.pack == "antelopev2" and joined.person(1).pack == "antelopev2"
    people = people_from_locations(parse_locations("0.3 0.4 0.2\n0.7 0.4 0.2", 512, 512), identity=joined)
    assert [p.identity.pack for p in people.persons] == ["antelopev2", "antelopev2"]


def test_a_batch_mixing_recognisers_is_refused_naming_them():
    with pytest.raises(RealisIDInputError) as refused:
        join_identities([person("antelopev2"), person("buffalo_l", 1)])
    message = str(refused.value)
    assert message.startswith("input 'identity': the identities were made with different "
                              "face-analysis packs (identity 1: antelopev2, identity 2: buffalo_l)")
    assert "Fix: make every identity with the same pack" in message


def test_an_unknown_pack_in_a_batch_makes_the_batch_unknown():
    assert join_identities([person("antelopev2"), person(None, 1)]).pack is None


def save_projector(path, pack=None, record=True):
    model = IDProjector(512, 4, 64)
    metadata = {"realisid.projector": json.dumps({"tokens": 4, **({"pack": pack} if pack else {})})} if record else None
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=metadata)
    return str(path)


def test_realisids_projector_refuses_identities_of_another_pack(tmp_path):
    projector = load_projector(save_projector(tmp_path / "p.safetensors", "antelopev2"))
    assert projector.pack == "antelopev2"
    assert project(projector, person("antelopev2")).count == 1
    with pytest.raises(RealisIDInputError, match=r"input 'identity': the identity was made "
                                                 r"with the buffalo_l pack, but the ID projector was trained on "
                                                 r"antelopev2 embeddings.*Fix: choose 'antelopev2'"):
        project(projector, person("buffalo_l"))


def test_a_projector_that_does_not_say_takes_any_pack(tmp_path):
    for i, kwargs in enumerate(({}, {"record": False})):
        projector = load_projector(save_projector(tmp_path / f"q{i}.safetensors", **kwargs))
        assert projector.pack is None and project(projector, person("buffalo_l")).count == 1


@pytest.mark.parametrize("text, says", [("{no", "is not a JSON object"), (json.dumps({"pack": 5}), "field 'pack' is 5")])
def test_a_broken_projector_record_is_named(tmp_path, text, says):
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in IDProjector(512, 4, 64).state_dict().items()}, str(path),
              metadata={"realisid.projector": text})
    with pytest.raises(RealisIDInputError, match=r"input 'projector_name': bad.safetensors's metadata "
                                                 r"'realisid.projector' " + says):
        load_projector(str(path))


def test_the_trainers_export_writes_the_pack_and_the_trained_feather(tmp_path):
    from dataclasses import replace

    from realisid_train.config import Config
    from realisid_train.export import describe, export_branches
    data = tmp_path / "data"
    data.mkdir()
    (data / "prepare.json").write_text(json.dumps({"settings": {"pack": "buffalo_l"}}))
    config = Config().resolve("SD1.5")
    config = replace(config, data=replace(config.data, manifest=str(data / "manifest.jsonl")),
                     local=replace(config.local, feather=0.2))
    assert describe(config, "local", 3).feather == 0.2
    written = export_branches(config, 3, IDProjector(512, 4, 768).state_dict(), None, None, str(tmp_path / "models"))
    assert load_projector(written["projector"]).pack == "buffalo_l"
