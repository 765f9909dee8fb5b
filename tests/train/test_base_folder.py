"""A base-model folder missing a part, or a local path that is not there, is named before diffusers reads it."""
from __future__ import annotations

import shutil

import pytest

from train_helpers import tiny_config


def _train(tmp_path, base, capsys, family="auto"):
    from realisid_train.__main__ import main
    from realisid_train.config import dumps
    (tmp_path / "manifest.jsonl").write_text("")
    path = tmp_path / "train.toml"
    path.write_text(dumps(tiny_config(base, tmp_path, tmp_path / "run", family=family)))
    code = main(["train", "--config", str(path), "--quiet"])
    return code, capsys.readouterr().err


def _without(source, tmp_path, *removed):
    folder = tmp_path / "base"
    shutil.copytree(source, folder)
    for part in removed:
        target = folder / part
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return folder


@pytest.mark.parametrize("part, words", [
    ("unet", "unet/ (the U-Net) is missing"),
    ("vae", "vae/ (the VAE) is missing"),
    ("text_encoder", "text_encoder/ (the CLIP text encoder) is missing"),
    ("tokenizer", "tokenizer/ (the CLIP tokenizer) is missing"),
    ("scheduler", "scheduler/ (the noise schedule) is missing"),
    ("unet/diffusion_pytorch_model.safetensors", "unet/ (the U-Net) has no diffusion_pytorch_model*.safetensors"),
    ("text_encoder/config.json", "text_encoder/ (the CLIP text encoder) has no config.json"),
])
@pytest.mark.parametrize("family", ["auto", "SD1.5"])
def test_a_missing_part_of_the_base_folder_is_named(tiny_sd15, tmp_path, capsys, part, words, family):
    code, err = _train(tmp_path, _without(tiny_sd15, tmp_path, part), capsys, family)
    assert code == 2, err
    assert "is not a complete diffusers" in err and words in err and "Traceback" not in err, err


def test_sdxls_second_text_encoder_is_required(tiny_sdxl, tmp_path, capsys):
    code, err = _train(tmp_path, _without(tiny_sdxl, tmp_path, "text_encoder_2", "tokenizer_2"), capsys)
    assert code == 2
    assert "text_encoder_2/ (SDXL's second text encoder) is missing" in err
    assert "tokenizer_2/ (SDXL's second tokenizer) is missing" in err


def test_a_mistyped_local_path_is_not_taken_for_a_hub_id(tiny_sd15, tmp_path, capsys):
    code, err = _train(tmp_path, tiny_sd15.parent / (tiny_sd15.name + "x"), capsys)
    assert code == 2 and "no such folder" in err and "is the last part misspelt?" in err, err
    code, err = _train(tmp_path, "~/no-such-realisid-folder/sd15", capsys)
    assert code == 2 and "base.model = '~/no-such-realisid-folder/sd15': no such folder" in err, err


def test_a_part_diffusers_cannot_read_is_named(tiny_sd15, tmp_path, capsys):
    folder = _without(tiny_sd15, tmp_path)
    (folder / "vae" / "config.json").write_text("{not json")
    code, err = _train(tmp_path, folder, capsys, family="SD1.5")
    assert code == 2 and "vae/ could not be loaded" in err and "Traceback" not in err, err


def test_hub_ids_and_existing_folders_pass_the_check(tiny_sd15):
    from realisid_train.base_folder import model_location
    assert model_location("stable-diffusion-v1-5/stable-diffusion-v1-5") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert model_location(str(tiny_sd15)) == str(tiny_sd15)
