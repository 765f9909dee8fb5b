"""The branches as ComfyUI controls, driven in-process with ComfyUI's own loaders and nodes.

These read the residuals ComfyUI's sampler would hand the U-Net, so they can check exact
sums, locality and error paths that a picture cannot show.
"""
import pytest
import torch

from fixtures.host import host_node, load_pack, pack_module

SIGMA = 3.0


@pytest.fixture(scope="module")
def comfy(tiny):
    load_pack()
    import comfy.controlnet
    import comfy.sd
    model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(tiny["sd15"]))
    encode = host_node("CLIPTextEncode").encode
    nets = {role: comfy.controlnet.load_controlnet(str(tiny[role])) for role in ("sd15_cn", "sd15_cn_b", "sd15_cn_c", "sdxl_cn")}
    return {"model": model, "nets": nets, "positive": encode(clip, "two friends")[0], "negative": encode(clip, "")[0]}


@pytest.fixture(scope="module")
def faces():
    guidance, locations = host_node("RealisID_LocationGuidance").draw(128, 96, "0.3 0.4 0.25\n0.8 0.7 0.12")
    return {"guidance": guidance, "locations": locations, "hints": torch.rand(2, 96, 96, 3, generator=torch.Generator().manual_seed(0))}


def local(comfy, faces, positive=None, strength=1.0, start=0.0, end=1.0, net="sd15_cn", identity=None, feather=0.15):
    positive = comfy["positive"] if positive is None else positive
    return host_node("RealisID_ApplyLocalBranch").apply(
        positive, comfy["negative"], comfy["nets"][net], faces["locations"], faces["hints"], strength, start, end,
        32, 1.6, feather, identity=identity)


def global_(comfy, faces, positive=None, strength=1.0, identity=None, net="sd15_cn_b"):
    positive = comfy["positive"] if positive is None else positive
    return host_node("RealisID_ApplyGlobalBranch").apply(
        positive, comfy["negative"], comfy["nets"][net], faces["guidance"], strength, 0.0, 1.0, identity=identity)


def plain(comfy, positive=None, strength=1.0):
    positive = comfy["positive"] if positive is None else positive
    hint = torch.full((1, 96, 128, 3), 0.5)
    return host_node("ControlNetApplyAdvanced").apply_controlnet(
        positive, comfy["negative"], comfy["nets"]["sd15_cn_c"], hint, strength, 0.0, 1.0)


def residuals(comfy, conditioning, sigma=SIGMA, x=None):
    """Run pre_run and one get_control of the conditioning's control, as ComfyUI's sampler does."""
    base = comfy["model"].model
    control = conditioning[0][1]["control"]
    control.pre_run(base, lambda p: base.model_sampling.percent_to_sigma(p))
    x = torch.randn(1, 4, 12, 16, generator=torch.Generator().manual_seed(1)) if x is None else x  # 128×96 px
    cond = {"c_crossattn": conditioning[0][0]}
    try:
        return control.get_control(x, torch.tensor([sigma]), cond, 1, {})
    finally:
        control.cleanup()


def assert_sum(combined, parts):
    for key in ("output", "middle"):
        for i, got in enumerate(combined[key]):
            want = sum(p[key][i] for p in parts)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_local_global_and_plain_controlnet_sum_exactly(comfy, faces):
    chain = plain(comfy, strength=0.5)[0]
    chain = global_(comfy, faces, positive=chain, strength=1.3)[0]
    chain = local(comfy, faces, positive=chain, strength=0.7)[0]
    alone = [residuals(comfy, plain(comfy, strength=0.5)[0]),
             residuals(comfy, global_(comfy, faces, strength=1.3)[0]),
             residuals(comfy, local(comfy, faces, strength=0.7)[0])]
    assert_sum(residuals(comfy, chain), alone)


def test_strength_scales_each_branch(comfy, faces):
    for apply in (lambda s: local(comfy, faces, strength=s)[0], lambda s: global_(comfy, faces, strength=s)[0]):
        full, scaled = residuals(comfy, apply(1.0)), residuals(comfy, apply(0.7))
        for key in ("output", "middle"):
            for a, b in zip(full[key], scaled[key]):
                torch.testing.assert_close(b, 0.7 * a, atol=1e-6, rtol=1e-5)


def test_local_residuals_stay_inside_the_face_regions(comfy, faces):
    geometry = pack_module("realisid_core.geometry")
    out = residuals(comfy, local(comfy, faces, feather=0.0)[0])
    regions = geometry.regions_from_locations(faces["locations"], 12, 16, 1.6)
    for r in out["output"] + out["middle"]:
        size = r.shape[-2]
        k = geometry.halvings_between(12, size)
        level = regions.at_level(k, 32, geometry.halve(32, k))
        inside = torch.zeros(r.shape[-2:], dtype=torch.bool)
        for x0, y0, side in zip(level.x0.tolist(), level.y0.tolist(), level.side.tolist()):
            inside[max(0, int(y0)):int(y0 + side) + 1, max(0, int(x0)):int(x0 + side) + 1] = True
        energy = r[0].abs().sum(0)
        assert energy[~inside].max() == 0
        assert energy[inside].max() > 0


def test_identity_tokens_reach_only_their_own_branch(comfy, faces):
    tokens_cls = pack_module("realisid_core.identity_tokens").IdentityTokens
    identity = tokens_cls(torch.randn(2, 4, 768, generator=torch.Generator().manual_seed(3)))
    with_id = residuals(comfy, global_(comfy, faces, identity=identity)[0])
    without = residuals(comfy, global_(comfy, faces)[0])
    assert not torch.allclose(with_id["middle"][0], without["middle"][0])
    chain = global_(comfy, faces, positive=plain(comfy)[0], identity=identity)[0]
    assert_sum(residuals(comfy, chain), [residuals(comfy, plain(comfy)[0]), with_id])
    local_id = residuals(comfy, local(comfy, faces, identity=identity)[0])
    assert not torch.allclose(local_id["middle"][0], residuals(comfy, local(comfy, faces)[0])["middle"][0])


def test_identity_of_the_wrong_width_is_a_clear_error(comfy, faces):
    errors = pack_module("realisid_core.errors")
    tokens = pack_module("realisid_core.identity_tokens").IdentityTokens(torch.randn(1, 4, 2048))
    with pytest.raises(errors.RealisIDInputError, match="input 'identity': the identity tokens are 2048 wide"):
        local(comfy, faces, identity=tokens)
    three = pack_module("realisid_core.identity_tokens").IdentityTokens(torch.randn(3, 4, 768))
    with pytest.raises(errors.RealisIDInputError, match="3 identities were given for 2 face locations"):
        local(comfy, faces, identity=three)


def test_sdxl_controlnet_on_an_sd15_model_is_refused_in_pre_run(comfy, faces):
    errors = pack_module("realisid_core.errors")
    for conditioning in (local(comfy, faces, net="sdxl_cn")[0], global_(comfy, faces, net="sdxl_cn")[0]):
        control = conditioning[0][1]["control"]
        base = comfy["model"].model
        with pytest.raises(errors.RealisIDInputError, match="built for SDXL .* but the model is SD1.5"):
            control.pre_run(base, lambda p: base.model_sampling.percent_to_sigma(p))


def test_working_size_defaults_by_family(comfy, faces):
    assert local(comfy, faces)[0][0][1]["control"].spec.settings.working_size == 32  # given explicitly
    auto = host_node("RealisID_ApplyLocalBranch").apply
    for net, size in (("sd15_cn", 64), ("sdxl_cn", 128)):
        pos, _ = auto(comfy["positive"], comfy["negative"], comfy["nets"][net], faces["locations"], faces["hints"],
                      1.0, 0.0, 1.0, 0, 1.6, 0.15)
        assert pos[0][1]["control"].spec.settings.working_size == size


def test_start_end_window_switches_the_local_branch(comfy, faces):
    conditioning = local(comfy, faces, start=0.5, end=1.0)[0]
    base = comfy["model"].model
    early = base.model_sampling.percent_to_sigma(0.1)
    late = base.model_sampling.percent_to_sigma(0.9)
    assert residuals(comfy, conditioning, sigma=early) is None
    assert residuals(comfy, conditioning, sigma=late) is not None


def test_cond_and_uncond_share_one_control_so_comfyui_can_batch_them(comfy, faces):
    positive, negative = host_node("RealisID_ApplyLocalBranch").apply(
        comfy["positive"], comfy["positive"], comfy["nets"]["sd15_cn"], faces["locations"], faces["hints"],
        1.0, 0.0, 1.0, 32, 1.6, 0.15)
    assert positive[0][1]["control"] is negative[0][1]["control"]


def test_misfit_residuals_from_another_control_are_caught_before_the_unet(comfy, faces):
    from comfy.controlnet import ControlBase

    class WrongShapes(ControlBase):
        def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
            return {"output": [torch.zeros(1, 320, 5, 5)] * 4, "middle": [torch.zeros(1, 320, 3, 3)]}

    conditioning = [[comfy["positive"][0][0], {**comfy["positive"][0][1], "control": WrongShapes()}]]
    with pytest.raises(RuntimeError, match="RealisID Apply Local Branch: the control residuals do not fit"):
        residuals(comfy, local(comfy, faces, positive=conditioning)[0])


def test_controls_are_loaded_with_the_unet(comfy, faces):
    control = local(comfy, faces)[0][0][1]["control"]
    assert control.get_models() == [comfy["nets"]["sd15_cn"].control_model_wrapped]
    assert control.copy().spec is control.spec


def test_fewer_hints_than_faces_is_a_clear_error(comfy, faces):
    errors = pack_module("realisid_core.errors")
    with pytest.raises(errors.RealisIDInputError, match=r"input 'hints': 1 hint images for 2 faces.*Fix: give exactly one hint per face"):
        host_node("RealisID_ApplyLocalBranch").apply(comfy["positive"], comfy["negative"], comfy["nets"]["sd15_cn"],
                                                     faces["locations"], faces["hints"][:1], 1.0, 0.0, 1.0, 32, 1.6, 0.15)


def test_a_controlnet_that_is_not_sd_style_is_refused_at_apply(comfy, faces):
    errors = pack_module("realisid_core.errors")
    from comfy.controlnet import ControlLora
    with pytest.raises(errors.RealisIDInputError, match="input 'control_net': this is a ControlLora"):
        host_node("RealisID_ApplyLocalBranch").apply(comfy["positive"], comfy["negative"], ControlLora({}),
                                                     faces["locations"], faces["hints"], 1.0, 0.0, 1.0, 32, 1.6, 0.15)


def test_locations_or_guidance_for_a_picture_of_another_shape_are_refused(comfy, faces):
    errors = pack_module("realisid_core.errors")
    square = torch.randn(1, 4, 16, 16)
    with pytest.raises(errors.RealisIDInputError, match=r"input 'face_locations': it was made for a 128×96 picture "
                                                        r"but the latent being sampled is 16×16 cells"):
        residuals(comfy, local(comfy, faces)[0], x=square)
    with pytest.raises(errors.RealisIDInputError, match=r"RealisID Apply Global Branch: input 'guidance': it was made for a 128×96"):
        residuals(comfy, global_(comfy, faces)[0], x=square)
    assert residuals(comfy, local(comfy, faces)[0], x=torch.randn(1, 4, 24, 32)) is not None  # same shape, twice the size


def test_interrupt_stops_the_local_branch(comfy, faces):
    import comfy.model_management as mm
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            residuals(comfy, local(comfy, faces)[0])
    finally:
        mm.interrupt_current_processing(False)


def test_short_memory_runs_the_crops_in_chunks_with_the_same_result(comfy, faces, monkeypatch):
    import comfy.model_management as mm
    whole = residuals(comfy, local(comfy, faces)[0])
    forwards = []
    control = local(comfy, faces)[0][0][1]["control"]
    original = control.control_model.forward
    monkeypatch.setattr(control.control_model, "forward", lambda *a, **k: forwards.append(1) or original(*a, **k))
    per_crop = 32 * 32 * control.control_model.model_channels * control._BYTES_FACTOR * 4
    room = per_crop / 0.8  # room for one crop
    monkeypatch.setattr(mm, "get_free_memory", lambda dev=None, torch_free_too=False: (room, room) if torch_free_too else room)
    chunked = residuals(comfy, [[comfy["positive"][0][0], {**comfy["positive"][0][1], "control": control}]])
    assert len(forwards) == 2  # two faces, one latent: one crop per forward
    for key in ("output", "middle"):
        for a, b in zip(whole[key], chunked[key]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
