"""Every trainer setting is checked before the first step: wrong type, out of range, contradictory — refused
with a message naming the TOML key, the value and the fix (config.py, validation.py)."""
from __future__ import annotations

import math
import random
from dataclasses import fields

import pytest

from realisid_train.config import SECTIONS, Config, ConfigError, dumps, from_dict, load_config

FIX_WORDS = ("set ", "give ", "use ", "write ", "swap ", "run ")


def every_key() -> list[tuple[str, str, object]]:
    """(section, key, default) of every setting."""
    out = []
    for section, f in SECTIONS.items():
        defaults = f.default_factory()
        out += [(section, g.name, getattr(defaults, g.name)) for g in fields(defaults)]
    return out


# (section.key, a value of the right type that cannot work, words the message must hold)
OUT_OF_RANGE = [
    ("base.model", "", "empty"),
    ("base.family", "SD3", "not a known value"),
    ("base.vae_dtype", "fp8", "not a known value"),
    ("data.manifest", " ", "empty"),
    ("data.resolution", 100, "multiple of 64"),
    ("data.resolution", -64, "out of range"),
    ("data.resolution", 65536, "out of range"),
    ("data.face_scale_min", 0.0, "out of range"),
    ("data.face_scale_max", 1.5, "out of range"),
    ("data.face_scale_distribution", "normal", "not a known value"),
    ("data.max_upscale", 0.5, "out of range"),
    ("data.flip", 1.5, "out of range"),
    ("data.caption_dropout", -0.1, "out of range"),
    ("data.num_workers", -1, "out of range"),
    ("local.hint_format", "sketch", "not a known value"),
    ("local.working_size", 12, "multiple of 8"),
    ("local.working_size", 100000, "out of range"),
    ("local.working_size", -8, "out of range"),
    ("local.margin", 0.0, "out of range"),
    ("local.margin", -1.6, "out of range"),
    ("local.margin", 4.5, "out of range"),  # the loader refuses a branch described with a margin over 4
    ("local.feather", 0.8, "out of range"),
    ("global.context", "image", "not a known value"),
    ("identity.tokens", 0, "out of range"),
    ("identity.tokens", 1000, "out of range"),
    ("identity.embedding_width", 256, "prepared embeddings"),
    ("identity.dropout", 2.0, "out of range"),
    ("train.output_dir", "", "empty"),
    ("train.seed", -1, "out of range"),
    ("train.seed", 2**40, "out of range"),
    ("train.max_steps", 0, "out of range"),
    ("train.batch_size", 0, "out of range"),
    ("train.gradient_accumulation_steps", -2, "out of range"),
    ("train.learning_rate", -1e-4, "backwards"),
    ("train.learning_rate", 0.0, "out of range"),
    ("train.learning_rate", 3.0, "out of range"),
    ("train.projector_learning_rate", -1e-4, "out of range"),
    ("train.lr_scheduler", "step", "not a known value"),
    ("train.lr_warmup_steps", -1, "out of range"),
    ("train.lr_warmup_steps", 20000, "not shorter than the training"),
    ("train.adam_beta1", 1.0, "out of range"),
    ("train.adam_beta2", -0.5, "out of range"),
    ("train.adam_weight_decay", -0.01, "out of range"),
    ("train.adam_epsilon", 0.0, "out of range"),
    ("train.max_grad_norm", 0.0, "out of range"),
    ("train.max_grad_norm", -1.0, "out of range"),
    ("train.mixed_precision", "fp8", "not a known value"),
    ("train.checkpoint_every", 0, "out of range"),
    ("train.checkpoints_total_limit", -1, "out of range"),
    ("train.resume", "", "empty"),
    ("train.log_every", 0, "out of range"),
    ("export.name", "../x", "file name"),
    ("export.name", "", "file name"),
    ("export.dtype", "int8", "not a known value"),
]
# settings whose every value of the right type is usable: only their wrong types are refused
ANY_VALUE = {"base.revision", "base.variant", "base.vae", "data.photos", "data.default_caption",
             "data.loss_on_padding", "local.enabled", "global.enabled", "train.gradient_checkpointing",
             "train.allow_tf32", "train.cpu"}
CONTRADICTIONS = [
    ({"data": {"face_scale_min": 0.5, "face_scale_max": 0.2}}, "data.face_scale_min = 0.5", "larger than"),
    ({"train": {"lr_warmup_steps": 100, "max_steps": 50}}, "train.lr_warmup_steps = 100", "max_steps = 50"),
    ({"train": {"lr_scheduler": "constant", "lr_warmup_steps": 10}}, "train.lr_warmup_steps = 10", "no warmup"),
    ({"train": {"cpu": True, "mixed_precision": "fp16"}}, "train.mixed_precision = 'fp16'", "needs a GPU"),
    ({"local": {"enabled": False}, "global": {"enabled": False}}, "local.enabled = false", "nothing to train"),
    ({"base": {"family": "SD1.5"}, "local": {"working_size": 128}}, "local.working_size = 128", "at most 96"),
]


def _settings(where: str, value) -> dict:
    section, key = where.split(".")
    return {section: {key: value}}


def _assert_names_key_value_and_fix(message: str, where: str, value) -> None:
    assert where in message, message
    assert repr(value) in message or str(value) in message, message
    assert any(word in message for word in FIX_WORDS), f"no fix in: {message}"


def test_the_table_covers_every_setting():
    keys = {f"{s}.{k}" for s, k, _ in every_key()}
    assert {w for w, _, _ in OUT_OF_RANGE} | ANY_VALUE == keys


@pytest.mark.parametrize("where, value, words", OUT_OF_RANGE, ids=[f"{w}={v!r}" for w, v, _ in OUT_OF_RANGE])
def test_a_value_out_of_range_is_refused_with_its_key_value_and_fix(where, value, words):
    with pytest.raises(ConfigError) as caught:
        from_dict(_settings(where, value))
    message = str(caught.value)
    assert words in message, message
    _assert_names_key_value_and_fix(message, where, value)


def _wrong_type(default):
    """A value of another TOML type than the setting's."""
    if isinstance(default, bool):
        return "yes"
    if isinstance(default, int):
        return 2.5
    if isinstance(default, float):
        return "0.1"
    return 7


@pytest.mark.parametrize("section, key, default", every_key(), ids=[f"{s}.{k}" for s, k, _ in every_key()])
def test_a_value_of_the_wrong_type_is_refused_with_its_key_value_and_fix(section, key, default):
    value = _wrong_type(default)
    with pytest.raises(ConfigError, match="must be") as caught:
        from_dict({section: {key: value}})
    _assert_names_key_value_and_fix(str(caught.value), f"{section}.{key}", value)
    assert "e.g." in str(caught.value)


@pytest.mark.parametrize("settings, names, words", CONTRADICTIONS, ids=[n for _, n, _ in CONTRADICTIONS])
def test_settings_that_contradict_each_other_are_refused(settings, names, words):
    with pytest.raises(ConfigError) as caught:
        from_dict(settings)
    assert names in str(caught.value) and words in str(caught.value), caught.value
    assert any(word in str(caught.value) for word in FIX_WORDS)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_not_a_number_is_refused_for_every_float_setting(value):
    for section, key, default in every_key():
        if not isinstance(default, float) or (key == "max_grad_norm" and value == math.inf):
            continue
        with pytest.raises(ConfigError, match=f"{section}.{key} = .*not a finite number"):
            from_dict({section: {key: value}})


def test_infinite_clipping_means_no_clipping():
    assert from_dict({"train": {"max_grad_norm": math.inf}}).train.max_grad_norm == math.inf


def _random_value(rng: random.Random):
    kind = rng.randrange(9)
    return [lambda: rng.choice([True, False]),
            lambda: rng.randint(-2**63, 2**63 - 1),
            lambda: rng.choice([0, 1, -1, 7, 64, 2**31, 2**32, -2**40]),
            lambda: rng.uniform(-1e6, 1e6),
            lambda: rng.choice([0.0, -0.0, 1e-300, -1e-9, 0.5, 1.0, 1 - 1e-12, math.nan, math.inf, -math.inf]),
            lambda: rng.choice(["", " ", "auto", "none", "../..", "a\x00b", "ünï", "SD1.5", "x" * 300]),
            lambda: [rng.random() for _ in range(rng.randrange(3))],
            lambda: {"nested": rng.random()},
            lambda: rng.choice(["1e-5", "true", "512", "nan"])][kind]()


def test_fuzz_random_values_are_taken_or_refused_by_name_never_a_raw_error():
    """Random TOML values (right and wrong types, extremes, NaN) in random settings: the result is a Config
    that round-trips through TOML, or a ConfigError naming the setting — never another exception."""
    rng = random.Random(17)
    keys = every_key()
    taken = refused = 0
    for _ in range(3000):
        chosen = rng.sample(keys, rng.randint(1, 3))
        data: dict = {}
        for section, key, _ in chosen:
            data.setdefault(section, {})[key] = _random_value(rng)
        try:
            config = from_dict(data)
        except ConfigError as exc:
            assert any(f"{s}.{k}" in str(exc) for s, k, _ in chosen) or "[" in str(exc), (data, exc)
            refused += 1
            continue
        taken += 1
        assert from_dict(__import__("tomllib").loads(dumps(config))) == config, data
    assert taken > 50 and refused > 1000, (taken, refused)


def test_fuzz_wrong_typed_values_in_every_setting_are_refused():
    rng = random.Random(3)
    wrong = {bool: lambda: rng.choice([0, 1, "true", 1.0, []]), int: lambda: rng.choice([1.0, "4", True, [4], {}]),
             float: lambda: rng.choice(["1e-5", True, [0.1], {"a": 1}]), str: lambda: rng.choice([1, 2.5, False, ["a"]])}
    for _ in range(400):
        for section, key, default in every_key():
            value = wrong[type(default)]()
            with pytest.raises(ConfigError, match=f"{section}.{key} must be"):
                from_dict({section: {key: value}})


def test_train_and_config_refuse_a_negative_learning_rate_before_loading_anything(tmp_path, capsys):
    """It used to train backwards (loss 0.95 → 1.23) and exit 0."""
    from realisid_train.__main__ import main
    path = tmp_path / "train.toml"
    path.write_text(dumps(Config()).replace("learning_rate = 1e-05", "learning_rate = -1e-05"))
    assert main(["config", "--config", str(path)]) == 2
    assert "train.learning_rate = -1e-05: out of range" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "train.toml"), "--set", "base.model=/nowhere/at/all"]) == 2
    err = capsys.readouterr().err
    assert "train.learning_rate = -1e-05" in err and "Traceback" not in err
    assert main(["config", "--set", "train.adam_epsilon=0"]) == 2
    assert "train.adam_epsilon = 0.0" in capsys.readouterr().err


def test_the_config_command_prints_a_checked_file_with_every_setting(tmp_path, capsys):
    from realisid_train.__main__ import main
    path = tmp_path / "train.toml"
    path.write_text("[train]\nmax_steps = 50\nlr_warmup_steps = 5\n[base]\nfamily = 'SDXL'\n")
    assert main(["config", "--config", str(path), "--set", "train.seed=3"]) == 0
    config = load_config(None)
    printed = from_dict(__import__("tomllib").loads(capsys.readouterr().out))
    assert (printed.train.max_steps, printed.train.seed, printed.data.resolution) == (50, 3, 1024)
    assert printed.data.manifest == config.data.manifest


def test_a_trainer_built_from_python_checks_its_settings_too(tmp_path):
    from dataclasses import replace

    from realisid_train.trainer import Trainer
    c = Config()
    with pytest.raises(ConfigError, match="train.learning_rate = -0.001"):
        Trainer(replace(c, train=replace(c.train, learning_rate=-1e-3)))
    with pytest.raises(ConfigError, match="data.manifest = .*no such file"):
        Trainer(replace(c, base=replace(c.base, family="SD1.5"), data=replace(c.data, manifest=str(tmp_path / "m"))))


def test_a_configuration_saved_with_a_checkpoint_is_read_as_it_was_trained(tmp_path):
    """Checkpoints of earlier versions (e.g. 100 steps with the default 500 warmup steps) still export and resume."""
    path = tmp_path / "config.toml"
    path.write_text("[train]\nmax_steps = 100\nlr_warmup_steps = 500\n")
    with pytest.raises(ConfigError, match="train.lr_warmup_steps = 500"):
        load_config(str(path))
    assert load_config(str(path), check=False).train.lr_warmup_steps == 500
    path.write_text("[train]\nmax_steps = 'many'\n")
    with pytest.raises(ConfigError, match="train.max_steps must be a whole number"):
        load_config(str(path), check=False)


def test_paths_are_checked_before_anything_is_loaded(tmp_path):
    from dataclasses import replace

    from realisid_train.validation import check_before_training
    (tmp_path / "m.jsonl").write_text("")
    (tmp_path / "a-file").write_text("")
    c = Config()
    c = replace(c, data=replace(c.data, manifest=str(tmp_path / "m.jsonl")), train=replace(c.train, cpu=True,
                                                                                          mixed_precision="no"))
    check_before_training(c)
    for changed, words in [(replace(c, data=replace(c.data, photos=str(tmp_path / "none"))), "data.photos = "),
                           (replace(c, train=replace(c.train, output_dir=str(tmp_path / "a-file"))), "a file, not a folder"),
                           (replace(c, train=replace(c.train, resume=str(tmp_path / "ckpt"))), "no such checkpoint")]:
        with pytest.raises(ConfigError, match=words):
            check_before_training(changed)
