"""RealisID Load ControlNet against files a user could put in models/controlnet: IdentityNet known by its
shapes whatever its name, descriptions that contradict the weights, broken descriptions, pickles (with
and without code) refused or read weights-only before ComfyUI's own loader sees them."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from fixtures import instantid_models
from fixtures.host import pack_module

AUTO = "auto (from the file)"


@pytest.fixture(scope="module")
def loader(tiny):
    return pack_module("nodes.controlnet_loader")


def error_type():
    return pack_module("realisid_core.errors").RealisIDInputError


def refusal(call, *args) -> str:
    with pytest.raises(error_type()) as caught:
        call(*args)
    message = str(caught.value)
    assert message.startswith("RealisID Load ControlNet: input ")
    return message


def renamed(source, folder, name):
    path = folder / name
    path.symlink_to(source)
    return path


def test_an_sd15_controlnet_named_instantid_is_not_taken_for_identitynet(loader, tiny, tmp_path):
    path = renamed(tiny["sd15_cn"], tmp_path, "instantid_identitynet.safetensors")
    message = refusal(loader.read_description, str(path), AUTO)
    assert "instantid_identitynet.safetensors carries no RealisID description" in message
    assert "a SD1.5 ControlNet (cross-attention width 768)" in message
    assert "not InstantID IdentityNet" in refusal(loader.read_description, str(path), "InstantID IdentityNet")


def test_a_real_identitynet_under_another_name_is_identitynet(loader, tmp_path):
    folder = instantid_models.identitynet_folder()
    path = renamed(folder / "diffusion_pytorch_model.safetensors", tmp_path, "my_face_model.safetensors")
    described = loader.read_description(str(path), AUTO)
    assert described.name == "InstantID IdentityNet" and described.hint_format == "instantid-kps"


def header_only(path, tensors, metadata):
    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(path), metadata=metadata)
    return path


SD15_SHAPES = {"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 768),
               "input_hint_block.0.weight": (16, 3, 3, 3)}


def test_an_sdxl_description_on_sd15_weights_is_refused(loader, tmp_path):
    sdxl = pack_module("realisid_core.models.description").BranchDescription(
        "local", "SDXL", hint_format="realisid-pose-v1-68", working_size=128, margin=1.6)
    path = header_only(tmp_path / "mislabelled.safetensors", SD15_SHAPES, sdxl.to_metadata())
    message = refusal(loader.read_description, str(path), AUTO)
    assert "mislabelled.safetensors's RealisID description says SDXL (cross-attention width 2048) but its " \
           "weights are a SD1.5 ControlNet (cross-attention width 768)" in message


@pytest.mark.parametrize("text, says", [
    ("{broken", "is not a JSON object of fields"),
    (json.dumps({"role": "local", "family": "SD1.5", "hint_format": "realisid-pose-v1-68", "working_size": 100000,
                 "margin": 1.6}), "field 'working_size' is 100000"),
    (json.dumps({"role": "local", "family": "SD1.5", "hint_format": "realisid-pose-v1-68", "working_size": 64,
                 "margin": 0}), "field 'margin' is 0"),
])
def test_a_broken_description_is_named_at_the_loader(loader, tmp_path, text, says):
    path = header_only(tmp_path / "edited.safetensors", SD15_SHAPES, {"realisid.description": text})
    message = refusal(loader.read_description, str(path), AUTO)
    assert "input 'control_net_name': edited.safetensors's RealisID description" in message and says in message


class RunsCode:
    def __reduce__(self):
        return shutil.rmtree, ("/nonexistent-realisid-test",)


def choose(monkeypatch, loader, path):
    monkeypatch.setattr(loader.folder_paths, "get_full_path_or_raise", lambda folder, name: str(path))


def test_a_pth_with_code_is_refused_before_comfyuis_loader_sees_it(loader, monkeypatch, tmp_path):
    path = tmp_path / "controlnet.pth"
    torch.save({"input_hint_block.0.weight": torch.zeros(16, 3, 3, 3), "x": RunsCode()}, path)
    choose(monkeypatch, loader, path)
    monkeypatch.setattr(loader.comfy.controlnet, "load_controlnet",
                        lambda *a, **k: pytest.fail("ComfyUI's loader was given the pickle"))
    message = refusal(loader.RealisIDLoadControlNet().load, "controlnet.pth", AUTO)
    assert "controlnet.pth holds code / pickled objects other than tensors (shutil.rmtree)" in message


def test_a_clean_pth_identitynet_is_read_weights_only_and_loads(loader, tiny, monkeypatch, tmp_path):
    path = tmp_path / "identitynet.pth"
    torch.save(load_file(str(tiny["sdxl_cn"])), path)
    choose(monkeypatch, loader, path)
    monkeypatch.setattr(loader.comfy.controlnet, "load_controlnet",
                        lambda *a, **k: pytest.fail("ComfyUI's loader was given the pickle"))
    control_net = loader.RealisIDLoadControlNet().load("identitynet.pth", AUTO)[0]
    assert getattr(control_net, loader.DESCRIPTION_ATTRIBUTE).name == "InstantID IdentityNet"


def test_a_truncated_controlnet_is_named_before_comfyuis_loader(loader, tiny, monkeypatch, tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(tiny["sd15_local"].read_bytes()[:100000])
    choose(monkeypatch, loader, path)
    message = refusal(loader.RealisIDLoadControlNet().load, "cut.safetensors", AUTO)
    assert "cut.safetensors is truncated" in message


def test_an_unknown_kind_is_named(loader, tiny):
    assert "input 'kind': 'canny' is no kind this node knows" in refusal(loader.read_description,
                                                                         str(tiny["sd15_local"]), "canny")
