"""InstantID's adapter file: the published ip-adapter.bin structure written by torch.save, its
.safetensors form, a pickle that would run code (refused, never run), files that are not adapters."""
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fixtures.instantid_models import RESAMPLER, SDXL_CROSS_ATTENTION, ip_layers_state, resampler_state
from realisid_core.errors import RealisIDInputError
from realisid_core.models.instantid import load_adapter

SMALL = dict(dim=128, depth=2, heads=2, num_queries=4, embedding_dim=512, output_dim=2048, ff_mult=2)
WIDTHS = [64, 64, 128]


def published(seed=0, widths=WIDTHS, **sizes):
    return {"image_proj": resampler_state(seed, **{**SMALL, **sizes}), "ip_adapter": ip_layers_state(widths, seed=seed)}


def test_published_structure_loads_with_sizes_from_the_shapes(tmp_path):
    data = published()
    torch.save(data, tmp_path / "ip-adapter.bin")
    adapter = load_adapter(str(tmp_path / "ip-adapter.bin"))
    assert adapter.layer_widths == WIDTHS and adapter.context_width == 2048
    assert adapter.resampler.tokens == 4 and adapter.resampler.width == 2048 and len(adapter.resampler.layers) == 2
    tokens = torch.randn(3, 4, 2048)
    kv = adapter.keys_values(tokens)
    assert len(kv) == 3
    # layer i is key n = 2i + 1 (diffusers numbers every processor; attn2's are the odd ones)
    torch.testing.assert_close(kv[2][0], tokens @ data["ip_adapter"]["5.to_k_ip.weight"].T)
    torch.testing.assert_close(kv[1][1], tokens @ data["ip_adapter"]["3.to_v_ip.weight"].T)


def test_seventy_layer_pairs_in_sdxls_order(tmp_path):
    """SDXL's file: 70 layer pairs (odd n = 1 … 139) at 640/1280 channels; the token width is read from
    the file, so it is reduced here (the full 1280/2048 Resampler is proven in test_instantid_resampler)."""
    data = {"image_proj": resampler_state(1, **{**SMALL, "output_dim": 64}),
            "ip_adapter": ip_layers_state(SDXL_CROSS_ATTENTION, context=64, seed=1)}
    assert sorted(int(k.split(".")[0]) for k in data["ip_adapter"])[-1] == 139 and len(data["ip_adapter"]) == 140
    torch.save(data, tmp_path / "ip-adapter.bin")
    adapter = load_adapter(str(tmp_path / "ip-adapter.bin"))
    assert adapter.describe() == "70 cross-attention layers (10 of 640, 60 of 1280 channels)"
    assert adapter.layer_widths == SDXL_CROSS_ATTENTION and adapter.context_width == 64


def test_the_published_resampler_has_51_tensors_and_its_sizes():
    state = resampler_state(2)
    assert len(state) == 51 and state["latents"].shape == (1, 16, RESAMPLER["dim"])
    assert state["layers.3.0.to_kv.weight"].shape == (2560, 1280) and state["layers.3.1.3.weight"].shape == (1280, 5120)


def test_safetensors_and_flat_forms_give_the_same_adapter(tmp_path):
    data = published(seed=2)
    flat = {f"{part}.{k}": v.contiguous() for part in ("image_proj", "ip_adapter") for k, v in data[part].items()}
    save_file(flat, str(tmp_path / "ip-adapter.safetensors"))
    torch.save(flat, tmp_path / "flat.bin")
    torch.save(data, tmp_path / "nested.bin")
    loaded = [load_adapter(str(tmp_path / n)) for n in ("nested.bin", "ip-adapter.safetensors", "flat.bin")]
    reference = loaded[0].state_dict()
    for other in loaded[1:]:
        for k, v in other.state_dict().items():
            assert torch.equal(v, reference[k]), k


def test_one_copy_per_file_version(tmp_path):
    torch.save(published(seed=3), tmp_path / "a.bin")
    a, b = load_adapter(str(tmp_path / "a.bin")), load_adapter(str(tmp_path / "a.bin"))
    assert a is b
    os.utime(tmp_path / "a.bin", (1, 1))  # a new version of the file is read again
    assert load_adapter(str(tmp_path / "a.bin")) is not a


class RunsCodeWhenLoaded:
    """A pickle whose loading calls a function: here it writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "the pickle ran code")


def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran.txt"
    data = published(seed=4)
    data["payload"] = RunsCodeWhenLoaded(marker)
    torch.save(data, tmp_path / "ip-adapter.bin")
    # the payload is real: unrestricted unpickling would run it
    with open(tmp_path / "probe.pkl", "wb") as f:
        pickle.dump(RunsCodeWhenLoaded(tmp_path / "probe.txt"), f)
    with open(tmp_path / "probe.pkl", "rb") as f:
        pickle.load(f)
    assert (tmp_path / "probe.txt").exists()

    with pytest.raises(RealisIDInputError) as refused:
        load_adapter(str(tmp_path / "ip-adapter.bin"))
    assert not marker.exists()
    message = str(refused.value)
    assert "ip-adapter.bin holds code / pickled objects other than tensors (" in message and "pathlib.Path" in message
    assert "nothing in it was run" in message and "input 'adapter_name'" in message
    assert "weights_only=False" not in message and "again" not in message.split("Fix:")[0]


@pytest.mark.parametrize("content, message", [
    ({"something": torch.zeros(1)}, "is not an InstantID adapter: it has no 'image_proj' and 'ip_adapter'"),
    (b"not a torch file at all", "is not a torch file"),
])
def test_files_that_are_not_adapters_are_refused(tmp_path, content, message):
    path = tmp_path / "other.bin"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(RealisIDInputError, match=message):
        load_adapter(str(path))


def test_layers_must_fit_the_resamplers_tokens(tmp_path):
    data = published(seed=5)
    data["ip_adapter"] = ip_layers_state(WIDTHS, context=768)
    torch.save(data, tmp_path / "mixed.bin")
    with pytest.raises(RealisIDInputError, match=r"take \[768\]-wide tokens but its Resampler makes 2048-wide"):
        load_adapter(str(tmp_path / "mixed.bin"))


def test_the_pack_never_imports_diffusers():
    """diffusers is for the tests only: neither the nodes nor the engine import it."""
    import ast
    repo = Path(__file__).resolve().parents[2]
    for path in [*(repo / "nodes").rglob("*.py"), *(repo / "realisid_core").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            assert not any(n.split(".")[0] == "diffusers" for n in names), f"{path.name} imports diffusers"
