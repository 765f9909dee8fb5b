"""The configuration file, and the command line from training to the files the nodes load."""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import replace

import pytest
import torch

from train_helpers import tiny_config


def test_every_setting_round_trips_through_toml(tmp_path):
    from realisid_train.config import Config, dumps, load_config
    config = Config().resolve("SDXL")
    config = replace(config, data=replace(config.data, default_caption='a "quoted" caption\\ with ünïcode'))
    path = tmp_path / "c.toml"
    path.write_text(dumps(config), encoding="utf-8")
    assert load_config(str(path)) == config
    assert config.data.resolution == 1024 and config.local.working_size == 128 and config.base.vae_dtype == "fp32"


def test_the_config_command_prints_every_setting(capsys):
    from realisid_train.__main__ import main
    from realisid_train.config import Config, from_dict
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert from_dict(tomllib.loads(text)) == Config()
    for section in ("[base]", "[data]", "[local]", "[global]", "[identity]", "[train]", "[export]"):
        assert section in text


@pytest.mark.parametrize("text, message", [
    ("[train]\nmax_step = 3\n", "unknown setting train.max_step; \\[train\\] has output_dir"),
    ("[trian]\nmax_steps = 3\n", "unknown section \\[trian\\]"),
    ("[train]\nmax_steps = 'ten'\n", "train.max_steps must be a whole number"),
    ("[data]\nface_scale_min = 0.7\n", "data.face_scale_min = 0.7: larger than data.face_scale_max = 0.6"),
    ("[local]\nhint_format = 'sketch'\n", "local.hint_format = 'sketch': not a known value; set one of "
                                           "'realisid-pose-v1-68'"),
    ("[local]\nenabled = false\n[global]\nenabled = false\n", "nothing to train"),
    ("[train]\nmixed_precision = 'fp8'\n", "train.mixed_precision = 'fp8'"),
])
def test_bad_settings_are_refused_by_name(tmp_path, text, message):
    from realisid_train.config import ConfigError, load_config
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_command_line_overrides():
    from realisid_train.config import load_config
    c = load_config(None, ["train.max_steps=700", "base.model=some/model", "global.context=identity",
                           "data.flip=0", "train.gradient_checkpointing=false"])
    assert (c.train.max_steps, c.base.model, c.global_.context, c.data.flip, c.train.gradient_checkpointing) == \
        (700, "some/model", "identity", 0.0, False)


def test_train_then_export_from_the_command_line(prepared, tiny_sd15, tmp_path, capsys):
    """`train` writes checkpoints with their configuration beside them and a CSV loss log; `export` writes the
    local and global ControlNets (original ControlNet layout) and the ID projector with the metadata the nodes read."""
    from safetensors import safe_open

    from realisid_core.models.description import BranchDescription
    from realisid_train.__main__ import main
    from realisid_train.checkpoints import list_checkpoints, read_trainer_state
    from realisid_train.config import dumps, load_config
    _, data, _ = prepared
    run = tmp_path / "run"
    path = tmp_path / "train.toml"
    path.write_text(dumps(tiny_config(tiny_sd15, data, run, max_steps=5)))
    assert main(["train", "--config", str(path), "--set", "train.max_steps=3", "--set", "train.checkpoints_total_limit=1",
                 "--quiet"]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    checkpoints = list_checkpoints(str(run))
    assert [step for step, _ in checkpoints] == [3]  # every 2 steps and the last; the limit keeps 1
    saved = load_config(os.path.join(checkpoints[0][1], "config.toml"))
    assert saved.train.max_steps == 3 and saved.local.working_size == 8 and saved.base.family == "SD1.5"
    assert read_trainer_state(checkpoints[0][1])["step"] == 3
    assert (run / "logs" / "loss.csv").read_text().count("\n") == 4  # header + 3 steps

    models = tmp_path / "models"
    assert main(["export", str(run), "--out", str(models)]) == 0
    files = {role: models / sub for role, sub in (("local", "controlnet/realisid_local_sd15.safetensors"),
                                                  ("global", "controlnet/realisid_global_sd15.safetensors"),
                                                  ("projector", "realisid/realisid_id_projector_sd15.safetensors"))}
    described = {}
    for role, file in files.items():
        with safe_open(str(file), framework="pt") as f:
            metadata, keys = f.metadata(), list(f.keys())
            dtypes = {f.get_tensor(k).dtype for k in keys}
        assert dtypes == {torch.float16}
        assert "realisid.config" in metadata and metadata["realisid.family"] == "SD1.5"
        assert json.loads(metadata["realisid.training"])["step"] == 3
        if role == "projector":
            assert sorted(keys) == ["norm.bias", "norm.weight", "proj.bias", "proj.weight"]
            info = json.loads(metadata["realisid.projector"])
            assert (info["tokens"], info["width"], info["embedding_width"]) == (2, 32, 512)
        else:
            described[role] = BranchDescription.from_metadata(metadata)
            assert all(k.startswith(("input_blocks.", "zero_convs.", "input_hint_block.", "middle_block",
                                     "time_embed.")) for k in keys)
    local, glob = described["local"], described["global"]
    assert (local.role, local.family, local.hint_format, local.working_size, local.margin, local.context) == \
        ("local", "SD1.5", "realisid-pose-v1-68", 8, 1.6, "identity")
    assert (glob.role, glob.family, glob.guidance_format, glob.context) == \
        ("global", "SD1.5", "realisid-location-v1", "text")


def test_ldm_conversion_maps_every_key_once_and_refuses_unknown_ones():
    from diffusers import ControlNetModel

    from realisid_train.export import controlnet_to_ldm
    from train_helpers import sdxl_shaped_unet
    state = ControlNetModel.from_unet(sdxl_shaped_unet(), load_weights_from_unet=False).state_dict()
    converted = controlnet_to_ldm(state)
    assert len(converted) == len(state)
    assert "label_emb.0.0.weight" in converted and "input_hint_block.14.weight" in converted
    assert "zero_convs.8.0.weight" in converted and "input_blocks.8.1.transformer_blocks.1.attn2.to_k.weight" in converted
    with pytest.raises(ValueError, match="no place in the original ControlNet layout"):
        controlnet_to_ldm({**state, "down_blocks.0.resnets.0.mystery.weight": torch.zeros(1)})


def test_the_trainer_imports_the_engine_not_the_host_and_the_nodes_never_import_the_trainer():
    import re
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    host = re.compile(r"^\s*(from|import)\s+(comfy|comfy_extras|folder_paths|nodes|server)\b", re.M)
    for path in (repo / "realisid_train").rglob("*.py"):
        assert not host.search(path.read_text(encoding="utf-8")), path
    trainer = re.compile(r"^\s*(from|import)\s+(\.*)realisid_train\b", re.M)
    for folder in ("nodes", "realisid_core"):
        for path in (repo / folder).rglob("*.py"):
            assert not trainer.search(path.read_text(encoding="utf-8")), path


def test_the_estimate_runs_the_trainers_forward_on_the_real_sd15_architecture():
    """`python -m realisid_train estimate` (docs/training.md's memory and time table): SD1.5's real shapes on the
    meta device — two 361 M-parameter ControlNets and the projector trained; checkpointing trades FLOPs for memory."""
    from realisid_train.estimate import estimate, table
    on, off = estimate("SD1.5", 1), estimate("SD1.5", 1, gradient_checkpointing=False)
    assert on["parameters_trained_M"] == pytest.approx(2 * 361.279 + 512 * 4 * 768 / 1e6 + 4 * 768 * 1e-6 + 2 * 768e-6,
                                                       abs=0.01)
    assert on["memory_activations_GiB"] < off["memory_activations_GiB"]
    assert on["tflops_per_step"] > off["tflops_per_step"] > 3
    assert "| SD1.5 512px | 1 | local+global | on |" in table([on, off])
