"""Branch descriptions (`realisid.description` metadata): every wrong value is a RealisIDInputError naming
the file, the field and the fix; a fuzz test over random JSON of right and wrong shapes."""
import json
import random

import pytest

from realisid_core.errors import RealisIDInputError
from realisid_core.models.description import (METADATA_KEY, BranchDescription, ControlNetShapes, controlnet_shapes,
                                              known_kind_from_shapes, shape_contradiction)

LOCAL = {"role": "local", "family": "SD1.5", "hint_format": "realisid-pose-v1-68", "working_size": 64, "margin": 1.6,
         "context": "identity", "name": "my branch", "version": 1}
GLOBAL = {"role": "global", "family": "SDXL", "guidance_format": "realisid-location-v1", "context": "text"}


def read(fields_or_text):
    text = fields_or_text if isinstance(fields_or_text, str) else json.dumps(fields_or_text)
    return BranchDescription.from_metadata({METADATA_KEY: text}, "branch.safetensors")


def refusal(fields_or_text) -> str:
    with pytest.raises(RealisIDInputError) as caught:
        read(fields_or_text)
    message = str(caught.value)
    assert "input 'control_net_name': branch.safetensors's RealisID description" in message
    assert "Fix: re-export the branch" in message
    return message


def test_valid_descriptions_are_read_and_round_trip():
    assert read(LOCAL) == BranchDescription(**LOCAL)
    assert read(GLOBAL).working_size is None
    described = BranchDescription(**LOCAL, feather=0.2)
    assert read(json.loads(described.to_metadata()[METADATA_KEY])) == described
    assert "feather" not in json.loads(BranchDescription(**LOCAL).to_metadata()[METADATA_KEY])  # absent = default
    assert read({**LOCAL, "added_by_a_newer_exporter": [1, 2]}) == BranchDescription(**LOCAL)


@pytest.mark.parametrize("text, says", [
    ("{not json", "is not a JSON object of fields"),
    ("[1, 2, 3]", "is not a JSON object of fields"),
    ('"local"', "is not a JSON object of fields"),
    ("null", "is not a JSON object of fields"),
    ("[" * 100000, "is not a JSON object of fields"),
])
def test_text_that_is_not_a_json_object_is_named(text, says):
    assert says in refusal(text)


@pytest.mark.parametrize("change, field, says", [
    ({"margin": 0}, "margin", "is 0; expected a number from 1 to 4"),
    ({"margin": -1.5}, "margin", "is -1.5"),
    ({"margin": 1e9}, "margin", "expected a number from 1 to 4"),
    ({"margin": "1.6"}, "margin", 'is "1.6"'),
    ({"margin": None}, "margin", "is missing"),
    ({"margin": True}, "margin", "is true"),
    ({"working_size": 100000}, "working_size", "is 100000; a SD1.5 branch works at a multiple of 8 latent cells "
                                               "from 8 to 96"),
    ({"working_size": 0}, "working_size", "is 0"),
    ({"working_size": -64}, "working_size", "is -64"),
    ({"working_size": 60}, "working_size", "is 60"),
    ({"working_size": 64.0}, "working_size", "not a whole number"),
    ({"working_size": "64"}, "working_size", "not a whole number"),
    ({"working_size": None}, "working_size", "is missing"),
    ({"family": "SD3"}, "family", "is 'SD3'; expected one of SD1.5, SD2, SDXL"),
    ({"family": 15}, "family", "is 15, not a text"),
    ({"role": "middle"}, "role", "is 'middle'; expected one of local, global"),
    ({"role": ["local"]}, "role", "not a text"),
    ({"context": "both"}, "context", "is 'both'"),
    ({"hint_format": "canny"}, "hint_format", 'is "canny", not a known hint format'),
    ({"hint_format": None}, "hint_format", "is missing"),
    ({"hint_format": {"a": 1}}, "hint_format", "not a known hint format"),
    ({"feather": 0.9}, "feather", "is 0.9; expected a number from 0 to 0.5"),
    ({"feather": "soft"}, "feather", "is \"soft\""),
    ({"name": ""}, "name", "non-empty text"),
    ({"name": 7}, "name", "is 7"),
    ({"name": "x" * 1000}, "name", "at most 200 characters"),
    ({"version": 2}, "version", "exported by a newer RealisID"),
    ({"version": "1"}, "version", 'is "1"'),
    ({"version": 0}, "version", "is 0"),
])
def test_each_wrong_field_is_named_with_what_is_expected(change, field, says):
    message = refusal({**LOCAL, **change})
    assert f"field '{field}' {says}" in message or (f"field '{field}'" in message and says in message), message


def test_sdxl_working_sizes_are_bounded_by_the_sdxl_range():
    assert read({**LOCAL, "family": "SDXL", "working_size": 192}).working_size == 192
    assert "from 8 to 192" in refusal({**LOCAL, "family": "SDXL", "working_size": 200})


@pytest.mark.parametrize("missing", ["role", "family"])
def test_missing_required_fields_are_named(missing):
    fields = dict(LOCAL)
    del fields[missing]
    assert f"has no '{missing}' field" in refusal(fields)


def test_a_global_description_needs_its_guidance_format():
    assert "field 'guidance_format' is missing" in refusal({k: v for k, v in GLOBAL.items() if k != "guidance_format"})


def test_a_family_that_contradicts_the_weights_is_found_from_the_shapes():
    sdxl = BranchDescription(**{**LOCAL, "family": "SDXL", "working_size": 128})
    sd15_weights = controlnet_shapes({"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
                                      "input_hint_block.0.weight": (16, 3, 3, 3)})
    assert sd15_weights == ControlNetShapes(768, 3)
    assert "says SDXL (cross-attention width 2048) but its weights are a SD1.5 ControlNet" in \
        shape_contradiction(sdxl, sd15_weights)
    assert shape_contradiction(BranchDescription(**LOCAL), sd15_weights) is None
    assert "holds no ControlNet weights" in shape_contradiction(sdxl, controlnet_shapes({"w": (3,)}))


def test_identitynet_is_recognised_by_shapes_in_both_layouts():
    diffusers = {"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
                 "controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3)}
    ldm = {"control_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
           "control_model.input_hint_block.0.weight": (16, 3, 3, 3)}
    assert known_kind_from_shapes(controlnet_shapes(diffusers)) == "InstantID IdentityNet"
    assert known_kind_from_shapes(controlnet_shapes(ldm)) == "InstantID IdentityNet"
    sd15 = {"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
            "input_hint_block.0.weight": (16, 3, 3, 3)}
    assert known_kind_from_shapes(controlnet_shapes(sd15)) is None


# ---- the fuzz test ----------------------------------------------------------------------------------

VALUES = [None, True, False, 0, 1, -1, 8, 64, 128, 100000, 1.6, 0.0, -0.5, 2.5, float("nan"), float("inf"), 1e308,
          "", "local", "global", "SD1.5", "SDXL", "SD2", "identity", "text", "realisid-pose-v1-68", "instantid-kps",
          "realisid-location-v1", "x" * 300, [], [1], {}, {"a": 1}]
FIELDS = list(LOCAL) + ["guidance_format", "feather", "other"]


def random_json(rng: random.Random, depth: int = 0):
    pick = rng.random()
    if depth > 2 or pick < 0.6:
        return rng.choice(VALUES)
    if pick < 0.8:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(FIELDS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_description(rng: random.Random):
    kind = rng.random()
    if kind < 0.15:
        return random_json(rng)
    base = dict(rng.choice([LOCAL, GLOBAL]))
    for _ in range(rng.randint(0, 3)):
        field = rng.choice(FIELDS)
        if rng.random() < 0.2:
            base.pop(field, None)
        else:
            base[field] = random_json(rng)
    return base


def test_fuzz_random_descriptions_give_a_description_or_a_clear_error():
    rng = random.Random(2025)
    valid = refused = 0
    for _ in range(3000):
        value = random_description(rng)
        text = json.dumps(value)
        if rng.random() < 0.05:
            text = text[:rng.randint(0, len(text))]  # a damaged edit
        try:
            described = BranchDescription.from_metadata({METADATA_KEY: text}, "fuzz.safetensors")
        except RealisIDInputError as exc:
            assert "fuzz.safetensors" in str(exc) and "Fix:" in str(exc)
            refused += 1
            continue
        assert isinstance(described, BranchDescription)
        valid += 1
        assert BranchDescription.from_metadata(described.to_metadata()) == described
    assert valid > 100 and refused > 1000  # both sides of the line were reached
