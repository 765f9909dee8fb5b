"""Training = inference, proven: exported branches loaded by ComfyUI's own loader (through RealisID Load
ControlNet and the ID Projector Loader) and run by the pack's controls give the residuals the trainer's
forward gives on the same noisy latent, timestep, identity and hint.

ComfyUI's sampler hands a control x_noisy = x_t / sqrt(ᾱ_t) and sigma = sqrt((1 - ᾱ_t) / ᾱ_t) (its EPS
parameterisation); the control feeds its ControlNet calculate_input(sigma, x_noisy) = x_t and the
timestep nearest to sigma on the model's schedule — t itself. The trainer's DDPM schedule is SD's, the
one ComfyUI's SD1.5/SDXL models sample with.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from train_helpers import randomize_zero_layers, sd15_shaped_unet, sdxl_shaped_unet

T = 600
FEATHER = 0.15
PLACES = "0.3 0.4 0.25"          # one face (the trainer trains on one face per picture)
TWO_PLACES = "0.3 0.4 0.25\n0.75 0.65 0.15"
LATENT = (12, 16)                 # a 128×96 picture
ATOL, RTOL = 1e-4, 1e-4


@pytest.fixture(scope="module")
def host(tiny):
    """ComfyUI in-process with the pack loaded, and a folder the loaders search for exported files."""
    from fixtures.host import load_pack
    load_pack()
    return tiny


def make_config(family: str, global_context: str = "text"):
    from realisid_train.config import Config
    c = Config()
    return replace(c, base=replace(c.base, model="(built in the test)", family=family),
                   local=replace(c.local, working_size=8, feather=FEATHER),
                   global_=replace(c.global_, context=global_context)).resolve(family)


def trained_branches(config, unet, seed=0):
    """The trainer's branches built from `unet`, with weights as after some training (zero layers random)."""
    from realisid_train.models import build_branches
    branches = build_branches(config, unet)
    randomize_zero_layers(branches.local, seed)
    randomize_zero_layers(branches.global_, seed + 1)
    return branches.eval()


def export_and_load(config, branches, folder):
    """Export as `python -m realisid_train export` does, then load with the pack's loader nodes."""
    import folder_paths

    from fixtures.host import host_node, pack_module
    from realisid_train.export import export_branches
    written = export_branches(config, 7, branches.projector.state_dict(), branches.local.state_dict(),
                              branches.global_.state_dict(), str(folder), dtype="fp32")
    # first in the lists: an earlier export of the same names (another test's) must not be found instead
    folder_paths.add_model_folder_path("controlnet", str(folder / "controlnet"), is_default=True)
    folder_paths.add_model_folder_path(pack_module("nodes.paths").REALISID_FOLDER, str(folder / "realisid"),
                                       is_default=True)
    auto = pack_module("nodes.controlnet_loader").AUTO
    name = lambda role: written[role].split("/")[-1]  # noqa: E731
    local = host_node("RealisID_LoadControlNet").load(name("local"), auto)[0]
    global_ = host_node("RealisID_LoadControlNet").load(name("global"), auto)[0]
    projector = host_node("RealisID_IDProjectorLoader").load(name("projector"))[0]
    return local, global_, projector


def noisy(batch, seed=1):
    """The trainer's x_t at timestep T and what ComfyUI's sampler hands a control for it."""
    from diffusers import DDPMScheduler
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012)
    g = torch.Generator().manual_seed(seed)
    x0, noise = torch.randn(batch, 4, *LATENT, generator=g), torch.randn(batch, 4, *LATENT, generator=g)
    timesteps = torch.full((batch,), T)
    x_t = scheduler.add_noise(x0, noise, timesteps)
    alpha = scheduler.alphas_cumprod[T].double()
    sigma = ((1 - alpha) / alpha).sqrt().float()
    return x_t, timesteps, (x_t.double() / alpha.sqrt()).float(), torch.full((batch,), float(sigma))


def poses(count):
    from realisid_core.faces.pose import frontal_pose
    pose = frontal_pose()
    return [pose, pose.mirrored()][:count]


def identity(count, seed=2):
    from realisid_core.people.identity import Identity, unit
    g = torch.Generator().manual_seed(seed)
    return Identity(unit(torch.randn(count, 512, generator=g)))


def people_for(places, ident):
    from realisid_core.people.locations import parse_locations
    from realisid_core.people.people import people_from_locations
    locations = parse_locations(places, LATENT[1] * 8, LATENT[0] * 8)
    return people_from_locations(locations, identity=ident, poses=poses(locations.count)), locations


def comfy_residuals(control, model, x, sigma, cond, cond_or_uncond):
    """pre_run and one get_control, as ComfyUI's sampler calls them."""
    control.pre_run(model, lambda p: model.model_sampling.percent_to_sigma(p))
    try:
        with torch.no_grad():
            return control.get_control(x, sigma, cond, 1, {"cond_or_uncond": cond_or_uncond})
    finally:
        control.cleanup()


def assert_same(comfy, down, mid):
    assert len(comfy["output"]) == len(down)
    for got, want in zip(comfy["output"] + comfy["middle"], list(down) + [mid]):
        assert got.shape == want.shape
        assert want.abs().max() > 1e-3  # a real residual, not zeros matching zeros
        torch.testing.assert_close(got.float(), want.float(), atol=ATOL, rtol=RTOL)


def local_inputs(config, locations, batch):
    """What the trainer's data pipeline gives the local branch for these faces: plans and hints."""
    from realisid_train.branches import local_hints, local_plan
    boxes = locations.boxes.numpy()
    plan = local_plan(boxes, config.local, *LATENT)
    drawn = local_hints(config.local.hint_format, poses(locations.count), boxes, plan, *LATENT,
                        config.local.working_size)
    hints = torch.from_numpy(drawn).permute(0, 3, 1, 2).float() / 255
    return [plan] * batch, hints.repeat(batch, 1, 1, 1)


def guidance(locations, batch):
    from realisid_core.signals.guidance import render_location_guidance
    drawn = render_location_guidance(locations, LATENT[1] * 8, LATENT[0] * 8)
    return drawn.permute(0, 3, 1, 2).repeat(batch, 1, 1, 1)


@pytest.fixture(scope="module")
def sd15(host, tmp_path_factory):
    import comfy.sd
    config = make_config("SD1.5")
    branches = trained_branches(config, sd15_shaped_unet())
    nets = export_and_load(config, branches, tmp_path_factory.mktemp("export_sd15"))
    model = comfy.sd.load_checkpoint_guess_config(str(host["sd15"]))[0].model
    return config, branches, nets, model


def test_comfyui_samples_the_trainers_timestep(sd15):
    _, _, _, model = sd15
    _, timesteps, _, sigma = noisy(1)
    assert int(model.model_sampling.timestep(sigma)[0]) == T


def test_exported_local_branch_in_comfyui_equals_the_trainers_forward(sd15):
    """CFG batch: row 0 conditional (the person's identity), row 1 unconditional — the nodes give it the null
    identity, the trainer's identity dropout gives the projector's tokens of a zero embedding."""
    from fixtures.host import host_node
    config, branches, (local_net, _, projector), model = sd15
    ident = identity(1)
    people, locations = people_for(PLACES, ident)
    x_t, timesteps, x_comfy, sigma = noisy(2)
    text = torch.randn(2, 77, 768, generator=torch.Generator().manual_seed(5))
    positive, negative = [[text[:1], {}]], [[text[1:], {}]]
    positive, _ = host_node("RealisID_ApplyLocalBranch").apply(positive, negative, local_net, people, 1.0, 0.0, 1.0,
                                                               "as trained", FEATHER, id_projector=projector)
    comfy = comfy_residuals(positive[0][1]["control"], model, x_comfy, sigma, {"c_crossattn": text}, [0, 1])

    only_local = type(branches)(branches.projector, branches.local, None)
    plans, hints = local_inputs(config, locations, 2)
    with torch.no_grad():
        down, mid = only_local(x_t, timesteps, ident.embeddings.expand(2, -1), torch.tensor([False, True]), text,
                               local_plans=plans, local_hint=hints)
    assert_same(comfy, down, mid)


def test_several_faces_each_with_their_identity_match_too(sd15):
    """Two people in one picture: the trainer's local forward (crop/paste of both faces) equals the nodes'."""
    from fixtures.host import host_node
    from realisid_train.branches import run_local
    config, branches, (local_net, _, projector), model = sd15
    ident = identity(2, seed=4)
    people, locations = people_for(TWO_PLACES, ident)
    x_t, timesteps, x_comfy, sigma = noisy(1, seed=3)
    text = torch.zeros(1, 77, 768)
    positive, _ = host_node("RealisID_ApplyLocalBranch").apply([[text, {}]], [[text, {}]], local_net, people, 1.0,
                                                               0.0, 1.0, "as trained", FEATHER, id_projector=projector)
    comfy = comfy_residuals(positive[0][1]["control"], model, x_comfy, sigma, {"c_crossattn": text}, [0])
    plans, hints = local_inputs(config, locations, 1)
    with torch.no_grad():
        tokens = branches.identity_tokens(ident.embeddings, torch.tensor([False, False]))
        down, mid = run_local(branches.local, x_t, timesteps, tokens, hints, plans)
    assert_same(comfy, down, mid)


@pytest.mark.parametrize("context", ["text", "identity"])
def test_exported_global_branch_in_comfyui_equals_the_trainers_forward(sd15, tmp_path, context):
    from fixtures.host import host_node
    config, branches, _, model = sd15
    if context == "identity":  # the same weights, described as attending to the identity
        config = make_config("SD1.5", "identity")
        branches = type(branches)(branches.projector, branches.local, branches.global_, "identity")
        _, global_net, projector = export_and_load(config, branches, tmp_path)
    else:
        _, global_net, projector = sd15[2]
    ident = identity(1, seed=6)
    people, locations = people_for(PLACES, ident)
    x_t, timesteps, x_comfy, sigma = noisy(2, seed=7)
    text = torch.randn(2, 77, 768, generator=torch.Generator().manual_seed(8))
    assert global_net.realisid_description.context == context
    positive, _ = host_node("RealisID_ApplyGlobalBranch").apply([[text[:1], {}]], [[text[1:], {}]], global_net,
                                                                people, 1.0, 0.0, 1.0, id_projector=projector)
    comfy = comfy_residuals(positive[0][1]["control"], model, x_comfy, sigma, {"c_crossattn": text}, [0, 1])

    only_global = type(branches)(branches.projector, None, branches.global_, context)
    with torch.no_grad():
        down, mid = only_global(x_t, timesteps, ident.embeddings.expand(2, -1), torch.tensor([False, True]), text,
                                global_hint=guidance(locations, 2))
    assert_same(comfy, down, mid)


def sdxl_y(pooled, height, width):
    """ComfyUI's SDXL vector: pooled text + the size embedding of a height×width picture (crop 0, 0)."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import Timestep
    embed = Timestep(256)
    sizes = torch.tensor([height, width, 0, 0, height, width], dtype=torch.float32)
    flat = torch.cat([embed(v.reshape(1)) for v in sizes]).reshape(1, -1)
    return torch.cat([pooled, flat.expand(pooled.shape[0], -1)], dim=1)


def test_sdxl_branches_in_comfyui_equal_the_trainers_forward(host, tmp_path):
    """SDXL: the local branch's crops get the size conditioning of a picture of the crop's own size
    (8 × working size pixels), the global branch the picture's; both equal ComfyUI's."""
    import comfy.sd

    from fixtures.host import host_node
    config = make_config("SDXL")
    branches = trained_branches(config, sdxl_shaped_unet(), seed=3)
    local_net, global_net, projector = export_and_load(config, branches, tmp_path)
    model = comfy.sd.load_diffusion_model(str(host["sdxl"])).model
    ident = identity(1, seed=9)
    people, locations = people_for(PLACES, ident)
    x_t, timesteps, x_comfy, sigma = noisy(2, seed=10)
    g = torch.Generator().manual_seed(11)
    text, pooled = torch.randn(2, 77, 2048, generator=g), torch.randn(2, 1280, generator=g)
    cond = {"c_crossattn": text, "y": sdxl_y(pooled, LATENT[0] * 8, LATENT[1] * 8)}

    positive, _ = host_node("RealisID_ApplyLocalBranch").apply([[text[:1], {}]], [[text[1:], {}]], local_net, people,
                                                               1.0, 0.0, 1.0, "as trained", FEATHER,
                                                               id_projector=projector)
    comfy_local = comfy_residuals(positive[0][1]["control"], model, x_comfy, sigma, cond, [0, 1])
    positive, _ = host_node("RealisID_ApplyGlobalBranch").apply([[text[:1], {}]], [[text[1:], {}]], global_net,
                                                                people, 1.0, 0.0, 1.0)
    comfy_global = comfy_residuals(positive[0][1]["control"], model, x_comfy, sigma, cond, [0, 1])

    plans, hints = local_inputs(config, locations, 2)
    drop = torch.tensor([False, True])
    with torch.no_grad():
        local = type(branches)(branches.projector, branches.local, None)(
            x_t, timesteps, ident.embeddings.expand(2, -1), drop, text, pooled, local_plans=plans, local_hint=hints)
        glob = type(branches)(branches.projector, None, branches.global_)(
            x_t, timesteps, ident.embeddings.expand(2, -1), drop, text, pooled, global_hint=guidance(locations, 2))
    assert_same(comfy_local, *local)
    assert_same(comfy_global, *glob)


def test_comfyui_reads_every_exported_weight_and_refuses_the_branch_on_another_family(sd15, host):
    """The file's keys are exactly the ControlNet ComfyUI builds from it (nothing missing, nothing left over);
    its description makes the nodes refuse it on an SDXL model."""
    import comfy.sd
    from safetensors import safe_open

    import folder_paths

    from fixtures.host import host_node, pack_module
    _, _, (local_net, _, projector), _ = sd15
    path = folder_paths.get_full_path_or_raise("controlnet", "realisid_local_sd15.safetensors")
    with safe_open(path, framework="pt") as f:
        assert set(f.keys()) == set(local_net.control_model.state_dict())
    people, _ = people_for(PLACES, identity(1))
    positive, _ = host_node("RealisID_ApplyLocalBranch").apply([[torch.zeros(1, 77, 2048), {}]],
                                                               [[torch.zeros(1, 77, 2048), {}]], local_net, people,
                                                               1.0, 0.0, 1.0, "as trained", FEATHER,
                                                               id_projector=projector)
    sdxl = comfy.sd.load_diffusion_model(str(host["sdxl"])).model
    errors = pack_module("realisid_core.errors")
    with pytest.raises(errors.RealisIDInputError, match="built for SD1.5 .* but the model is SDXL"):
        positive[0][1]["control"].pre_run(sdxl, lambda p: sdxl.model_sampling.percent_to_sigma(p))


def test_a_training_samples_hints_are_what_the_nodes_draw_for_its_face(sd15, prepared, tiny_sd15, tmp_path):
    """The data pipeline's hints for a composed training picture (its face box and pose) are, pixel for pixel,
    what the local branch draws in its crop frame and the global branch's guidance for that face."""
    from fixtures.host import host_node
    from realisid_core.faces.pose import FacePose
    from realisid_core.branches.local import LatentWindow
    from realisid_core.people.locations import FaceLocations
    from realisid_core.people.people import people_from_locations
    from realisid_train.dataset import TrainingStream
    from train_helpers import tiny_config
    _, _, (local_net, global_net, _), model = sd15
    _, data, _ = prepared
    config = tiny_config(tiny_sd15, data, tmp_path).resolve("SD1.5")
    config = replace(config, data=replace(config.data, resolution=128), local=replace(config.local, feather=FEATHER))
    stream = TrainingStream(config)
    for k in (0, 5, 11):
        sample = stream[k]
        pose = FacePose(sample["pose_keypoints"].numpy(), sample["pose_landmarks"].numpy())
        people = people_from_locations(FaceLocations(sample["box"][None].double(), 128, 128), poses=[pose])
        x = torch.zeros(1, 4, 16, 16)
        text = [[torch.zeros(1, 77, 768), {}]]
        local = host_node("RealisID_ApplyLocalBranch").apply(text, text, local_net, people, 1.0, 0.0, 1.0,
                                                             "as trained", FEATHER)[0][0][1]["control"]
        local.pre_run(model, lambda p: model.model_sampling.percent_to_sigma(p))
        whole = LatentWindow.whole(16, 16)
        hints = local._hints(whole, x.device, torch.float32)
        assert torch.equal(hints[0], sample["local_hint"])
        glob = host_node("RealisID_ApplyGlobalBranch").apply(text, text, global_net, people, 1.0, 0.0,
                                                             1.0)[0][0][1]["control"]
        drawn = glob._guidance(x, [(torch.arange(1), whole)])
        assert torch.equal(drawn[0], sample["global_hint"])
        local.cleanup()
