"""InstantID adapter files with the right container and wrong contents (a weights-only pickle may hold
lists, numbers, integer tensors, stray keys, wrong shapes): an adapter or a RealisIDInputError, never a
raw exception, and no allocation sized by a stray key."""
import random

import torch

from fixtures.instantid_models import ip_layers_state, resampler_state
from realisid_core.errors import RealisIDInputError
from realisid_core.models.instantid import InstantIDAdapter, adapter_from_file, split_adapter_state

SMALL = dict(dim=64, depth=2, dim_head=64, heads=1, num_queries=4, embedding_dim=16, output_dim=32, ff_mult=2)


def published():
    return {"image_proj": resampler_state(5, **SMALL), "ip_adapter": ip_layers_state([40, 48, 40], context=32, seed=6)}


def read(data):
    return adapter_from_file(split_adapter_state(data, "ip-adapter.bin"), "ip-adapter.bin")


def mutate(rng: random.Random, data: dict) -> dict:
    part = rng.choice(["image_proj", "ip_adapter"])
    state = data[part]
    key = rng.choice(sorted(state))
    what = rng.randrange(9)
    if what in (3, 7) and not isinstance(state[key], torch.Tensor):
        what = 0
    if what == 0:
        del state[key]
    elif what == 1:
        state[key] = torch.zeros([rng.randint(1, 5) for _ in range(rng.randint(0, 4))])
    elif what == 2:
        state[key] = rng.choice([[1.0, 2.0], 3, "text", None, {"a": torch.zeros(1)}, (torch.zeros(2),)])
    elif what == 3:
        state[key] = state[key].to(torch.int64)
    elif what == 4:
        state["layers.99999.0.to_q.weight" if part == "image_proj" else "99999.to_k_ip.weight"] = torch.zeros(1, 1)
    elif what == 5:
        state[key + ".extra"] = state.pop(key)
    elif what == 6:
        data[part] = rng.choice([[], 5, "x", None])
    elif what == 7:
        state[key] = torch.zeros(0, *state[key].shape[1:]) if state[key].ndim else torch.zeros(0)
    else:
        state[str(rng.randint(0, 200)) + "." + rng.choice(["to_k_ip", "to_v_ip", "other"]) + ".weight"] = torch.zeros(8, 32)
    return data


def test_a_published_small_adapter_reads():
    assert isinstance(read(published()), InstantIDAdapter)


def test_a_stray_layer_index_is_refused_before_anything_is_built():
    data = published()
    data["image_proj"]["layers.99999.0.to_q.weight"] = torch.zeros(1, 1)
    try:
        read(data)
    except RealisIDInputError as exc:
        assert "numbers its layers [0, 1, 99999]" in str(exc)
    else:
        raise AssertionError("a Resampler 100000 layers deep was accepted")


def test_fuzz_adapter_contents_give_an_adapter_or_a_clear_error():
    rng = random.Random(3)
    refused = 0
    for _ in range(300):
        data = published()
        for _ in range(rng.randint(1, 3)):
            if isinstance(data["image_proj"], dict) and isinstance(data["ip_adapter"], dict) \
                    and data["image_proj"] and data["ip_adapter"]:
                data = mutate(rng, data)
        try:
            assert isinstance(read(data), InstantIDAdapter)
        except RealisIDInputError as exc:
            assert "ip-adapter.bin" in str(exc) and "Fix:" in str(exc)
            refused += 1
    assert refused > 200
