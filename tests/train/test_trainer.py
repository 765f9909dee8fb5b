"""The training loop on tiny models on the CPU: it learns (every part), leaves the base alone, resumes exactly."""
from __future__ import annotations

import csv
import itertools
from dataclasses import replace

import pytest
import torch

from train_helpers import tiny_config


def snapshot(modules) -> list[dict]:
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]


def test_loss_falls_on_a_fixed_batch_gradients_reach_every_part_and_the_base_stays_frozen(prepared, tiny_sd15,
                                                                                          tmp_path):
    """Over-fit one batch (fixed noise and timesteps): the loss falls; the local ControlNet, the global ControlNet
    and the ID projector all get gradients and change — inside, not only their zero layers; the frozen base
    (U-Net, VAE, text encoder) is bit-for-bit what it was."""
    from realisid_train.trainer import Trainer
    _, data, _ = prepared
    config = tiny_config(tiny_sd15, data, tmp_path / "run", max_steps=40, checkpoint_every=1000, learning_rate=2e-3,
                         projector_learning_rate=2e-3)
    config = replace(config, identity=replace(config.identity, dropout=0.0))
    trainer = Trainer(config, progress=False)
    base_before = snapshot(trainer.base.modules())
    parts = trainer.parts
    inner = {"local": parts.local.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.weight,
             "global": parts.global_.conv_in.weight, "projector": parts.projector.proj.weight}
    inner_before = {k: v.detach().clone() for k, v in inner.items()}
    _, loader = trainer.data(0)
    batch = next(iter(loader))

    def loss_at_fixed_noise():
        trainer.generator.manual_seed(1234)
        with torch.no_grad():
            return float(trainer.micro_step(batch, backward=False))

    first = loss_at_fixed_noise()
    records = []
    for _ in range(25):
        trainer.generator.manual_seed(1234)  # the same noise and timesteps every step: one example to learn
        records.append(trainer.optimizer_step(itertools.repeat(batch)))
    last = loss_at_fixed_noise()
    assert last < 0.5 * first, (first, last, [round(r.loss, 4) for r in records])
    for part in ("local", "global", "projector"):
        assert all(r.values[f"grad_norm_{part}"] > 0 for r in records[2:]), part
        assert not torch.equal(inner[part], inner_before[part]), f"{part} did not learn"
    for before, module in zip(base_before, trainer.base.modules()):
        after = module.state_dict()
        assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert not any(p.requires_grad for m in trainer.base.modules() for p in m.parameters())


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(prepared, tiny_sd15, tmp_path):
    """Run A trains 4 steps; run B trains 2, stops, and a new trainer resumes it to 4: same losses, same weights
    (optimizer, LR schedule, step, data position and every random generator restored)."""
    from realisid_train.trainer import Trainer
    _, data, _ = prepared

    def config(out, steps):
        c = tiny_config(tiny_sd15, data, out, max_steps=steps, checkpoint_every=2, lr_scheduler="cosine",
                        lr_warmup_steps=1, gradient_accumulation_steps=2)
        return replace(c, identity=replace(c.identity, dropout=0.5), data=replace(c.data, caption_dropout=0.3))

    uninterrupted = Trainer(config(tmp_path / "a", 4), progress=False)
    losses_a = [r.loss for r in uninterrupted.run()]
    interrupted = Trainer(config(tmp_path / "b", 4), progress=False)
    losses_b = [r.loss for r in interrupted.run(until=2)]  # as if killed right after the step-2 checkpoint
    del interrupted
    resumed = Trainer(config(tmp_path / "b", 4), progress=False)
    assert resumed.resumed_from.endswith("step-00000002") and resumed.state.step == 2
    losses_b += [r.loss for r in resumed.run()]
    assert losses_b == pytest.approx(losses_a, rel=1e-6, abs=1e-7)
    for a, b in zip(uninterrupted.parts.state_dict().values(), resumed.parts.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with open(resumed.log_path, newline="") as f:  # the log reads as one run: steps 1..4, once each
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [float(r["loss"]) for r in rows] == pytest.approx(losses_a, rel=1e-5)


def test_identity_dropout_gives_exactly_the_nodes_null_identity(prepared, tiny_sd15, tmp_path):
    """Dropped rows get the projector's tokens of a zero embedding — bit for bit what the nodes' `project`
    gives CFG's unconditional side; and the data stream drops about `identity.dropout` of its samples."""
    from realisid_core.models.projector import project
    from realisid_core.people.identity import Identity
    from realisid_train.dataset import TrainingStream
    from realisid_train.models import build_branches
    from realisid_train.models import load_base
    _, data, _ = prepared
    config = tiny_config(tiny_sd15, data, tmp_path).resolve("SD1.5")
    branches = build_branches(config, load_base(config).unet)
    embeddings = torch.nn.functional.normalize(torch.randn(3, 512), dim=-1)
    with torch.no_grad():
        tokens = branches.identity_tokens(embeddings, torch.tensor([False, True, True]))
    reference = project(branches.projector, Identity(embeddings))
    assert torch.equal(tokens[1], reference.null[0]) and torch.equal(tokens[2], reference.null[0])
    torch.testing.assert_close(tokens[0], reference.tokens[0])
    assert not torch.allclose(tokens[0], tokens[1])

    config = replace(config, identity=replace(config.identity, dropout=0.25),
                     local=replace(config.local, enabled=False))
    stream = TrainingStream(config)
    dropped = [stream[k]["drop_identity"] for k in range(120)]
    assert 0.12 < sum(dropped) / len(dropped) < 0.38


def test_accumulation_gradient_checkpointing_and_mixed_precision_run(prepared, tiny_sd15, tmp_path):
    """bf16 mixed precision, gradient checkpointing on the U-Net and both ControlNets, 2 micro-batches per step."""
    from realisid_train.trainer import Trainer
    _, data, _ = prepared
    config = tiny_config(tiny_sd15, data, tmp_path / "run", max_steps=2, checkpoint_every=1000,
                         gradient_accumulation_steps=2, gradient_checkpointing=True, mixed_precision="bf16")
    trainer = Trainer(config, progress=False)
    assert trainer.base.unet.is_gradient_checkpointing
    assert trainer.parts.local.is_gradient_checkpointing and trainer.parts.global_.is_gradient_checkpointing
    assert trainer.base.unet.dtype == torch.bfloat16 and trainer.parts.local.dtype == torch.float32
    records = trainer.run()
    assert [r.step for r in records] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in records)
    assert trainer.state.samples == 2 * 2 * config.train.batch_size  # 2 steps × 2 micro-batches × batch
    assert records[-1].values["grad_norm_local"] > 0


def test_sdxl_trains_with_both_text_encoders_and_size_conditioning(prepared, tiny_sdxl, tmp_path):
    from realisid_train.trainer import Trainer
    _, data, _ = prepared
    config = tiny_config(tiny_sdxl, data, tmp_path / "run", family="auto", max_steps=2, checkpoint_every=1000)
    trainer = Trainer(config, progress=False)
    assert trainer.config.base.family == "SDXL" and trainer.config.base.vae_dtype == "fp32"
    before = snapshot([trainer.base.unet])
    records = trainer.run()
    assert len(records) == 2 and all(r.values["grad_norm_projector"] >= 0 for r in records)
    assert records[-1].values["grad_norm_local"] > 0 and records[-1].values["grad_norm_global"] > 0
    after = trainer.base.unet.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before[0].items())


def test_a_global_branch_on_the_prompt_alone_trains_and_exports_no_projector(prepared, tiny_sd15, tmp_path):
    from realisid_train.export import export_checkpoint
    from realisid_train.trainer import Trainer
    _, data, _ = prepared
    config = tiny_config(tiny_sd15, data, tmp_path / "run", max_steps=1)
    config = replace(config, local=replace(config.local, enabled=False))
    trainer = Trainer(config, progress=False)
    assert not trainer.parts.uses_identity and trainer.parts.local is None
    assert len(trainer.optimizer.param_groups) == 1
    record = trainer.run()[0]
    assert record.values["grad_norm_global"] > 0 and record.values["grad_norm_projector"] == 0
    written = export_checkpoint(str(tmp_path / "run"), str(tmp_path / "models"))
    assert sorted(written) == ["global"]
