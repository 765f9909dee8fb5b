"""The branches as ComfyUI controls, driven in-process with ComfyUI's own loaders and nodes.

These read the residuals ComfyUI's sampler would hand the U-Net, so they can check exact
sums, locality, CFG's two sides and error paths that a picture cannot show.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch

from fixtures.host import host_node, load_pack, pack_module

SIGMA = 3.0
PLACES = "0.3 0.4 0.25\n0.8 0.7 0.12"  # two faces on a 128×96 picture


@pytest.fixture(scope="module")
def comfy(tiny):
    load_pack()
    import comfy.controlnet
    import comfy.sd
    loader = pack_module("nodes.controlnet_loader")
    model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(tiny["sd15"]))
    encode = host_node("CLIPTextEncode").encode
    nets = {}
    for role in ("sd15_local", "sd15_global", "sd15_cn_c", "sdxl_local", "sd15_cn"):
        nets[role] = comfy.controlnet.load_controlnet(str(tiny[role]))
        if role in ("sd15_local", "sd15_global", "sdxl_local"):
            setattr(nets[role], loader.DESCRIPTION_ATTRIBUTE, loader.read_description(str(tiny[role]), loader.AUTO))
    # the global branch's weights again, described as trained to attend to the people's identities
    nets["sd15_global_id"] = nets["sd15_global"].copy()
    setattr(nets["sd15_global_id"], loader.DESCRIPTION_ATTRIBUTE,
            replace(getattr(nets["sd15_global"], loader.DESCRIPTION_ATTRIBUTE), context="identity"))
    return {"model": model, "nets": nets, "positive": encode(clip, "two friends")[0], "negative": encode(clip, "")[0]}


def make_people(places=PLACES, width=128, height=96, identity=None, poses=None, strengths=None):
    core = pack_module("realisid_core.people.people")
    locations = host_node("RealisID_LocationGuidance").locate(places, width, height)[0]
    people = core.people_from_locations(locations, tokens=identity, poses=poses)
    if strengths is not None:
        people = core.People(tuple(core.with_strength(p, s) for p, s in zip(people.persons, strengths)))
    return people


def tokens(n=2, width=768, seed=3):
    cls = pack_module("realisid_core.people.identity").IdentityTokens
    g = torch.Generator().manual_seed(seed)
    return cls(torch.randn(n, 4, width, generator=g), torch.randn(1, 4, width, generator=g))


@pytest.fixture(scope="module")
def people(comfy):
    return make_people()


def local(comfy, people, positive=None, strength=1.0, start=0.0, end=1.0, net="sd15_local", feather=0.15,
          size="as trained"):
    positive = comfy["positive"] if positive is None else positive
    return host_node("RealisID_ApplyLocalBranch").apply(
        positive, comfy["negative"], comfy["nets"][net], people, strength, start, end, size, feather)


def global_(comfy, people, positive=None, strength=1.0, net="sd15_global", start=0.0, end=1.0, **more):
    positive = comfy["positive"] if positive is None else positive
    return host_node("RealisID_ApplyGlobalBranch").apply(
        positive, comfy["negative"], comfy["nets"][net], people, strength, start, end, **more)


def plain(comfy, positive=None, strength=1.0):
    positive = comfy["positive"] if positive is None else positive
    hint = torch.full((1, 96, 128, 3), 0.5)
    return host_node("ControlNetApplyAdvanced").apply_controlnet(
        positive, comfy["negative"], comfy["nets"]["sd15_cn_c"], hint, strength, 0.0, 1.0)


def residuals(comfy, conditioning, sigma=SIGMA, x=None, cond=None, options=None):
    """Run pre_run and one get_control of the conditioning's control, as ComfyUI's sampler does."""
    base = comfy["model"].model
    control = conditioning[0][1]["control"]
    control.pre_run(base, lambda p: base.model_sampling.percent_to_sigma(p))
    x = torch.randn(1, 4, 12, 16, generator=torch.Generator().manual_seed(1)) if x is None else x  # 128×96 px
    cond = {"c_crossattn": conditioning[0][0].expand(x.shape[0], -1, -1)} if cond is None else cond
    try:
        with torch.no_grad():  # as while sampling
            return control.get_control(x, torch.tensor([sigma] * x.shape[0]), cond, 1, options or {})
    finally:
        control.cleanup()


def assert_sum(combined, parts):
    for key in ("output", "middle"):
        for i, got in enumerate(combined[key]):
            want = sum(p[key][i] for p in parts)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_local_global_and_plain_controlnet_sum_exactly(comfy, people):
    chain = plain(comfy, strength=0.5)[0]
    chain = global_(comfy, people, positive=chain, strength=1.3)[0]
    chain = local(comfy, people, positive=chain, strength=0.7)[0]
    alone = [residuals(comfy, plain(comfy, strength=0.5)[0]),
             residuals(comfy, global_(comfy, people, strength=1.3)[0]),
             residuals(comfy, local(comfy, people, strength=0.7)[0])]
    assert_sum(residuals(comfy, chain), alone)


def test_strength_scales_each_branch(comfy, people):
    for apply in (lambda s: local(comfy, people, strength=s)[0], lambda s: global_(comfy, people, strength=s)[0]):
        full, scaled = residuals(comfy, apply(1.0)), residuals(comfy, apply(0.7))
        for key in ("output", "middle"):
            for a, b in zip(full[key], scaled[key]):
                torch.testing.assert_close(b, 0.7 * a, atol=1e-6, rtol=1e-5)


def level_masks(regions_of, r, geometry, size=32, height=12):
    k = geometry.halvings_between(height, r.shape[-2])
    level = regions_of.at_level(k, size, geometry.halve(size, k))
    masks = []
    for x0, y0, side in zip(level.x0.tolist(), level.y0.tolist(), level.side.tolist()):
        inside = torch.zeros(r.shape[-2:], dtype=torch.bool)
        inside[max(0, int(y0)):int(y0 + side) + 1, max(0, int(x0)):int(x0 + side) + 1] = True
        masks.append(inside)
    return masks


def test_local_residuals_stay_inside_the_face_regions(comfy, people):
    geometry = pack_module("realisid_core.branches.geometry")
    out = residuals(comfy, local(comfy, people, feather=0.0)[0])
    regions = geometry.regions_from_locations(people.locations(), 12, 16, 1.6)
    for r in out["output"] + out["middle"]:
        inside = torch.stack(level_masks(regions, r, geometry)).any(0)
        energy = r[0].abs().sum(0)
        assert energy[~inside].max() == 0
        assert energy[inside].max() > 0


def test_each_person_has_their_own_strength(comfy):
    """Person 2 at strength 0 leaves their region untouched; person 1's region is as at full strength."""
    geometry = pack_module("realisid_core.branches.geometry")
    both = residuals(comfy, local(comfy, make_people(), feather=0.0)[0])
    first_only = residuals(comfy, local(comfy, make_people(strengths=[1.0, 0.0]), feather=0.0)[0])
    regions = geometry.regions_from_locations(make_people().locations(), 12, 16, 1.6)
    for full, half in zip(both["output"], first_only["output"]):
        one, two = level_masks(regions, full, geometry)
        assert half[0].abs().sum(0)[two & ~one].max() == 0
        torch.testing.assert_close(half[0][:, one & ~two], full[0][:, one & ~two], atol=1e-6, rtol=1e-5)


def test_cfg_unconditional_rows_get_the_null_identity(comfy, people):
    """Batched CFG (cond + uncond rows in one call) and unbatched calls: each row's residual is the one its
    context gives — the person's tokens on the conditional side, the null identity on the unconditional side."""
    identity = tokens()
    with_id = make_people(identity=identity)
    null_people = make_people(identity=type(identity)(identity.null.expand(2, -1, -1), identity.null))
    x = torch.randn(1, 4, 12, 16, generator=torch.Generator().manual_seed(1)).repeat(2, 1, 1, 1)
    batched = residuals(comfy, local(comfy, with_id)[0], x=x, options={"cond_or_uncond": [0, 1]})
    as_cond = residuals(comfy, local(comfy, with_id)[0], x=x[:1], options={"cond_or_uncond": [0]})
    as_uncond = residuals(comfy, local(comfy, with_id)[0], x=x[:1], options={"cond_or_uncond": [1]})
    null_everywhere = residuals(comfy, local(comfy, null_people)[0], x=x[:1], options={"cond_or_uncond": [0]})
    for key in ("output", "middle"):
        for b, c, u, n in zip(batched[key], as_cond[key], as_uncond[key], null_everywhere[key]):
            torch.testing.assert_close(b[:1], c, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(b[1:], u, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(u, n, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(batched["middle"][0][0], batched["middle"][0][1])  # the sides differ as their contexts do
    # the global branch trained on identities, with the people's: the same two sides
    g = residuals(comfy, global_(comfy, with_id, net="sd15_global_id")[0], x=x, options={"cond_or_uncond": [1, 0]})
    g_cond = residuals(comfy, global_(comfy, with_id, net="sd15_global_id")[0], x=x[:1],
                       options={"cond_or_uncond": [0]})
    torch.testing.assert_close(g["middle"][0][1:], g_cond["middle"][0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(g["middle"][0][0], g["middle"][0][1])


def test_another_controls_context_never_reaches_a_realisid_branch(comfy, people):
    """InstantID puts its face tokens in crossattn_controlnet for its own ControlNet; RealisID ignores them."""
    text = comfy["positive"][0][0]
    clean = residuals(comfy, local(comfy, people)[0], cond={"c_crossattn": text})
    foreign = {"c_crossattn": text, "crossattn_controlnet": torch.randn(1, 16, 768)}
    for apply in (lambda: local(comfy, people)[0], lambda: global_(comfy, people)[0]):
        a, b = residuals(comfy, apply(), cond={"c_crossattn": text}), residuals(comfy, apply(), cond=foreign)
        torch.testing.assert_close(a["middle"][0], b["middle"][0])
    assert clean is not None


def test_identity_tokens_reach_only_their_own_branch(comfy, people):
    with_people = make_people(identity=tokens())
    with_id = residuals(comfy, global_(comfy, with_people, net="sd15_global_id")[0])
    without = residuals(comfy, global_(comfy, people)[0])
    assert not torch.allclose(with_id["middle"][0], without["middle"][0])
    chain = global_(comfy, with_people, positive=plain(comfy)[0], net="sd15_global_id")[0]
    assert_sum(residuals(comfy, chain), [residuals(comfy, plain(comfy)[0]), with_id])
    local_id = residuals(comfy, local(comfy, make_people(identity=tokens()))[0])
    assert not torch.allclose(local_id["middle"][0], residuals(comfy, local(comfy, people)[0])["middle"][0])


def test_identity_of_the_wrong_width_is_blamed_on_the_identity_only_once_the_family_fits(comfy):
    errors = pack_module("realisid_core.errors")
    base = comfy["model"].model
    wide = make_people(identity=tokens(width=2048))
    control = local(comfy, wide)[0][0][1]["control"]
    with pytest.raises(errors.RealisIDInputError, match="input 'people': the identity tokens are 2048 wide"):
        control.pre_run(base, lambda p: base.model_sampling.percent_to_sigma(p))
    # an SDXL ControlNet on SD1.5 with identity: the family message, not the identity one
    control = local(comfy, wide, net="sdxl_local")[0][0][1]["control"]
    with pytest.raises(errors.RealisIDInputError, match="built for SDXL .* but the model is SD1.5"):
        control.pre_run(base, lambda p: base.model_sampling.percent_to_sigma(p))


def test_sdxl_controlnet_on_an_sd15_model_is_refused_in_pre_run(comfy, people):
    errors = pack_module("realisid_core.errors")
    control = local(comfy, people, net="sdxl_local")[0][0][1]["control"]
    base = comfy["model"].model
    with pytest.raises(errors.RealisIDInputError, match="built for SDXL .* but the model is SD1.5"):
        control.pre_run(base, lambda p: base.model_sampling.percent_to_sigma(p))


def test_other_model_families_are_refused_by_name(comfy, people):
    errors = pack_module("realisid_core.errors")
    control = local(comfy, people)[0][0][1]["control"]

    class Flux:  # what a FLUX model's config looks like to the control: no U-Net channels
        model_config = type("Config", (), {"unet_config": {"image_model": "flux", "in_channels": 16}})()
        model_sampling = comfy["model"].model.model_sampling
    with pytest.raises(errors.RealisIDInputError, match="not an SD-style U-Net.*SD1.5 and SDXL"):
        control.pre_run(Flux(), lambda p: 0.5)


def test_working_size_comes_from_the_controlnet_within_the_familys_sizes(comfy, people):
    assert local(comfy, people)[0][0][1]["control"].spec.settings.working_size == 32  # as the file says
    assert local(comfy, people, size="largest (1.5×)")[0][0][1]["control"].spec.settings.working_size == 48
    assert local(comfy, people, size="smaller (0.75×, faster)")[0][0][1]["control"].spec.settings.working_size == 32
    assert local(comfy, people)[0][0][1]["control"].spec.settings.margin == 1.6


def test_hints_are_drawn_where_the_crop_puts_each_face(comfy, tiny):
    """The branch draws each pose in its crop frame, in its ControlNet's format (here RealisID's 5 keypoints):
    the nose lands on the pixel the crop maps the placed nose to (the crop's own transform: regions from
    the same locations on the latent grid)."""
    import dataclasses

    from comfy.controlnet import load_controlnet
    geometry = pack_module("realisid_core.branches.geometry")
    face_pose = pack_module("realisid_core.faces.pose")
    pose = face_pose.FacePose.from_points(np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float),
                                          (0, 0, 100, 100))
    people = make_people(poses=[pose])
    net = load_controlnet(str(tiny["sd15_local"]))
    net.realisid_description = dataclasses.replace(comfy["nets"]["sd15_local"].realisid_description,
                                                   hint_format="realisid-pose-v1-5")
    control = host_node("RealisID_ApplyLocalBranch").apply(comfy["positive"], comfy["negative"], net, people, 1.0,
                                                           0.0, 1.0, "as trained", 0.15)[0][0][1]["control"]
    control.pre_run(comfy["model"].model, lambda p: 0.5)
    window = pack_module("realisid_core.branches.local").LatentWindow.whole(12, 16)
    hints = control._hints(window, torch.device("cpu"), torch.float32)  # [F, 3, 256, 256]
    regions = geometry.regions_from_locations(people.locations(), 12, 16, 1.6)
    for f, (cx, cy, w, h) in enumerate(people.locations().boxes.tolist()):
        longer = max(w * 16, h * 12)
        nose = np.array([cx * 16, cy * 12]) + (pose.keypoints[2] * longer)
        px = (nose - [float(regions.x0[f]), float(regions.y0[f])]) * 256 / float(regions.side[f])
        hint = hints[f].movedim(0, -1).numpy()
        assert hint[int(px[1]), int(px[0])].argmax() == 2  # the nose's colour (0, 160, 255) right there
        ys, xs = np.nonzero(hint.sum(-1) > 0)
        assert abs(xs.mean() - px[0]) < 256 * 0.1 and ys.size > 0
    control.cleanup()


def test_people_lists_of_1_2_and_8_keep_their_order(comfy):
    people_nodes = pack_module("nodes.people")
    made = []
    for k in range(8):
        box = f"{0.1 + 0.1 * k:.2f} {0.2 + 0.08 * k:.2f} 0.08 0.08"
        made.append(people_nodes.RealisIDPerson().make(1, box, 1.0 - 0.1 * k)[0])
    for n in (1, 2, 8):
        people, preview = host_node("RealisID_People").gather(**{f"person_{k + 1}": made[::-1][k] for k in range(n)})
        assert people.count == n and preview.shape[-1] == 3
        assert [p.strength for p in people.persons] == [m.strength for m in made[::-1][:n]]
        boxes = people.locations().boxes
        assert torch.allclose(boxes[:, 0], torch.tensor([m.place.box[0] for m in made[::-1][:n]], dtype=torch.float64))
    # earlier people come first, then person_1, ...
    chained, _ = host_node("RealisID_People").gather(people=host_node("RealisID_People").gather(person_1=made[3])[0],
                                                      person_1=made[5])
    assert [p.strength for p in chained.persons] == [made[3].strength, made[5].strength]
    out = residuals(comfy, local(comfy, people)[0], x=torch.randn(1, 4, 12, 12))
    assert out["middle"][0].abs().sum() > 0


def test_start_end_window_switches_the_local_branch(comfy, people):
    conditioning = local(comfy, people, start=0.5, end=1.0)[0]
    base = comfy["model"].model
    early = base.model_sampling.percent_to_sigma(0.1)
    late = base.model_sampling.percent_to_sigma(0.9)
    assert residuals(comfy, conditioning, sigma=early) is None
    assert residuals(comfy, conditioning, sigma=late) is not None


def test_cond_and_uncond_share_one_control_so_comfyui_can_batch_them(comfy, people):
    positive, negative = host_node("RealisID_ApplyLocalBranch").apply(
        comfy["positive"], comfy["positive"], comfy["nets"]["sd15_local"], people, 1.0, 0.0, 1.0, "as trained", 0.15)
    assert positive[0][1]["control"] is negative[0][1]["control"]


def test_misfit_residuals_from_another_control_are_caught_before_the_unet(comfy, people):
    from comfy.controlnet import ControlBase

    class WrongShapes(ControlBase):
        def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
            return {"output": [torch.zeros(1, 320, 5, 5)] * 4, "middle": [torch.zeros(1, 320, 3, 3)]}

    conditioning = [[comfy["positive"][0][0], {**comfy["positive"][0][1], "control": WrongShapes()}]]
    with pytest.raises(RuntimeError, match="RealisID Apply Local Branch: the control residuals do not fit"):
        residuals(comfy, local(comfy, people, positive=conditioning)[0])


def test_controls_are_loaded_with_the_unet(comfy, people):
    control = local(comfy, people)[0][0][1]["control"]
    assert control.get_models() == [comfy["nets"]["sd15_local"].control_model_wrapped]
    assert control.copy().spec is control.spec


def test_a_controlnet_without_description_or_of_another_kind_is_refused_at_apply(comfy, people):
    errors = pack_module("realisid_core.errors")
    with pytest.raises(errors.RealisIDInputError, match="loaded without its RealisID description.*RealisID Load ControlNet"):
        local(comfy, people, net="sd15_cn")
    with pytest.raises(errors.RealisIDInputError, match="is a global branch"):
        local(comfy, people, net="sd15_global")
    with pytest.raises(errors.RealisIDInputError, match="is a local branch"):
        global_(comfy, people, net="sd15_local")
    from comfy.controlnet import ControlLora
    lora = ControlLora({})
    lora.realisid_description = comfy["nets"]["sd15_local"].realisid_description
    with pytest.raises(errors.RealisIDInputError, match="input 'control_net': this is a ControlLora"):
        local(comfy, people, positive=None, net="sd15_local") and host_node("RealisID_ApplyLocalBranch").apply(
            comfy["positive"], comfy["negative"], lora, people, 1.0, 0.0, 1.0, "as trained", 0.15)


def test_advanced_controlnet_loader_settings_are_refused_not_dropped(comfy, people):
    """A ControlNet of another pack's class (Advanced-ControlNet's carries keyframes, soft weights, masks)."""
    from comfy.controlnet import ControlNet
    errors = pack_module("realisid_core.errors")

    class ControlNetAdvanced(ControlNet):  # the class Advanced-ControlNet's loader returns
        pass
    base = comfy["nets"]["sd15_local"]
    advanced = ControlNetAdvanced(base.control_model, load_device=base.load_device)
    advanced.realisid_description = base.realisid_description
    with pytest.raises(errors.RealisIDInputError, match="ControlNetAdvanced: its own settings .* not supported"):
        host_node("RealisID_ApplyLocalBranch").apply(comfy["positive"], comfy["negative"], advanced, people,
                                                     1.0, 0.0, 1.0, "as trained", 0.15)


def test_places_for_a_picture_of_another_shape_are_refused_naming_their_source(comfy, people):
    errors = pack_module("realisid_core.errors")
    square = torch.randn(1, 4, 16, 16)
    with pytest.raises(errors.RealisIDInputError, match=r"input 'people': the faces' places come from RealisID Location "
                                                        r"Guidance, made for a 128×96 picture, but the latent being "
                                                        r"sampled is 16×16 cells"):
        residuals(comfy, local(comfy, people)[0], x=square)
    with pytest.raises(errors.RealisIDInputError, match=r"RealisID Apply Global Branch: input 'people': .* 128×96"):
        residuals(comfy, global_(comfy, people)[0], x=square)
    assert residuals(comfy, local(comfy, people)[0], x=torch.randn(1, 4, 24, 32)) is not None  # same shape, twice the size
    mask_people = host_node("RealisID_LocationsFromMask").locate(
        torch.nn.functional.pad(torch.ones(1, 20, 20), (40, 68, 30, 46)), 0.0005)[0]
    from_mask = pack_module("realisid_core.people.people").people_from_locations(mask_people)
    with pytest.raises(errors.RealisIDInputError, match=r"come from RealisID Locations From Mask \(the mask\)"):
        residuals(comfy, local(comfy, from_mask)[0], x=square)


def test_interrupt_stops_the_local_branch(comfy, people):
    import comfy.model_management as mm
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            residuals(comfy, local(comfy, people)[0])
    finally:
        mm.interrupt_current_processing(False)


def test_short_memory_runs_the_crops_in_chunks_with_the_same_result(comfy, people, monkeypatch):
    import comfy.model_management as mm
    whole = residuals(comfy, local(comfy, people)[0])
    forwards = []
    control = local(comfy, people)[0][0][1]["control"]
    original = control.control_model.forward
    monkeypatch.setattr(control.control_model, "forward", lambda *a, **k: forwards.append(1) or original(*a, **k))
    budget = pack_module("realisid_core.branches.budget")
    room = (budget.activation_bytes_per_crop("cpu", "SD1.5", 32, 4, 320)
            + 2 * budget.kept_bytes_per_crop("SD1.5", 32, 4, 320))  # room for one crop per forward
    monkeypatch.setattr(mm, "get_free_memory", lambda dev=None, torch_free_too=False: (room, room) if torch_free_too else room)
    chunked = residuals(comfy, [[comfy["positive"][0][0], {**comfy["positive"][0][1], "control": control}]])
    assert len(forwards) == 2  # two faces, one latent: one crop per forward
    for key in ("output", "middle"):
        for a, b in zip(whole[key], chunked[key]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("area, faces, inside", [
    ((64, 128, 64, 0), "0.75 0.3 0.2\n0.25 0.7 0.2", [True, False]),   # the right half: face 2 is outside it
    ((64, 64, 64, 64), "0.75 0.75 0.15", [True]),                      # the bottom-right quarter
])
def test_area_conditioning_keeps_faces_where_they_were_placed(comfy, monkeypatch, area, faces, inside):
    """Through the real KSampler: Conditioning (Set Area) hands the control only its area of the latent;
    the residuals land on the faces' places in that area (a face outside it is absent), not moved into it."""
    geometry = pack_module("realisid_core.branches.geometry")
    controls = pack_module("nodes.controls")
    calls = []
    original = controls.LocalBranchControl.get_control

    def recording(self, x_noisy, t, cond, batched_number, transformer_options):
        out = original(self, x_noisy, t, cond, batched_number, transformer_options)
        calls.append((tuple(x_noisy.shape), None if out is None else out["output"][0].clone()))
        return out
    monkeypatch.setattr(controls.LocalBranchControl, "get_control", recording)
    width, height, x, y = area
    positive = host_node("ConditioningSetArea").append(comfy["positive"], width, height, x, y, 1.0)[0]
    people = make_people(faces, 128, 128)
    steered, negative = host_node("RealisID_ApplyLocalBranch").apply(
        positive, comfy["negative"], comfy["nets"]["sd15_local"], people, 1.0, 0.0, 1.0, "as trained", 0.0)
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    host_node("KSampler").sample(comfy["model"], 1, 1, 2.0, "euler", "normal", steered, negative, latent)
    area_calls = [(shape, r) for shape, r in calls if shape[-2:] == (height // 8, width // 8) and shape[-2:] != (16, 16)]
    assert area_calls, calls
    regions = geometry.regions_from_locations(people.locations(), 16, 16, 1.6)
    for _, r in area_calls:
        assert r.shape[-2:] == (height // 8, width // 8)
        energy = r[0].abs().sum(0)
        for f, expected in enumerate(inside):
            x0, y0 = float(regions.x0[f]) - x // 8, float(regions.y0[f]) - y // 8
            side = float(regions.side[f])
            window = energy[max(0, int(y0)):max(0, int(y0 + side) + 1), max(0, int(x0)):max(0, int(x0 + side) + 1)]
            assert (window.numel() > 0 and window.max() > 0) == expected
        mask = torch.zeros_like(energy, dtype=torch.bool)
        for f, expected in enumerate(inside):
            if expected:
                x0, y0 = float(regions.x0[f]) - x // 8, float(regions.y0[f]) - y // 8
                side = float(regions.side[f])
                mask[max(0, int(y0)):int(y0 + side) + 1, max(0, int(x0)):int(x0 + side) + 1] = True
        assert mask.any() and not (~mask).all()
        assert (~mask).sum() == 0 or energy[~mask].max() == 0  # nothing moved into the area's corner


def test_sdxl_crops_get_the_size_conditioning_of_a_crop_sized_picture(comfy):
    """SDXL's added conditioning for a face crop is what ComfyUI's SDXL gives a whole picture of the crop's
    size (original = target = 8 × working size, crop origin 0, 0), the prompt's pooled part kept."""
    import comfy.model_base
    from comfy.ldm.modules.diffusionmodules.openaimodel import Timestep
    controls = pack_module("nodes.controls")
    sdxl = type("SDXL", (), {"embedder": Timestep(256), "noise_augmentor": None})()
    pooled = torch.randn(2, 1280, generator=torch.Generator().manual_seed(5))
    whole_picture = comfy.model_base.SDXL.encode_adm(sdxl, pooled_output=pooled, width=1536, height=1024, crop_w=64,
                                                      crop_h=32, target_width=1536, target_height=1024)
    crop_sized = comfy.model_base.SDXL.encode_adm(sdxl, pooled_output=pooled, width=1024, height=1024)
    torch.testing.assert_close(controls.crop_size_conditioning(whole_picture, 128), crop_sized)  # 128 cells = 1024 px


def test_the_crops_memory_is_reported_to_comfyui(comfy, people):
    """ComfyUI frees memory for sampling from what controls report: the crops' activations are in it."""
    control = local(comfy, people)[0][0][1]["control"]
    weights_only = type(control).__mro__[2].inference_memory_requirements(control, torch.float16)
    budget = pack_module("realisid_core.branches.budget")
    crops = budget.crops_memory_bytes("cpu", "SD1.5", 32, 2, 4, budget.crops_per_forward("cpu", 32, "SD1.5", 2, None, 4))
    assert control.inference_memory_requirements(torch.float16) == weights_only + crops > weights_only


def test_a_text_trained_global_branch_never_gets_the_peoples_identity(comfy, people):
    with_id = residuals(comfy, global_(comfy, make_people(identity=tokens()))[0])
    without = residuals(comfy, global_(comfy, people)[0])
    torch.testing.assert_close(with_id["middle"][0], without["middle"][0], atol=0, rtol=0)


def test_an_identity_trained_global_branch_without_identities_is_refused_naming_the_node(comfy, people):
    errors = pack_module("realisid_core.errors")
    with pytest.raises(errors.RealisIDInputError, match=r"^RealisID Apply Global Branch: input 'people': .* trained to "
                                                        r"attend to the people's identities .* no person has one"):
        global_(comfy, people, net="sd15_global_id")


def test_a_workflow_saved_with_the_global_branchs_identity_input_still_runs(comfy, people):
    """Before the identity came from the people, Apply Global Branch took identity tokens of its own."""
    legacy = residuals(comfy, global_(comfy, people, net="sd15_global_id", identity=tokens())[0])
    from_people = residuals(comfy, global_(comfy, make_people(identity=tokens()), net="sd15_global_id")[0])
    torch.testing.assert_close(legacy["middle"][0], from_people["middle"][0], atol=0, rtol=0)
    assert "identity" not in host_node("RealisID_ApplyGlobalBranch", ui=True).INPUT_TYPES()["optional"]
    assert "id_projector" in host_node("RealisID_ApplyGlobalBranch", ui=True).INPUT_TYPES()["optional"]


def test_a_text_trained_local_branch_given_identities_refuses_instead_of_dropping_them(comfy):
    errors = pack_module("realisid_core.errors")
    net = comfy["nets"]["sd15_local"].copy()
    loader = pack_module("nodes.controlnet_loader")
    setattr(net, loader.DESCRIPTION_ATTRIBUTE,
            replace(getattr(comfy["nets"]["sd15_local"], loader.DESCRIPTION_ATTRIBUTE), context="text"))
    comfy["nets"]["sd15_local_text"] = net
    with pytest.raises(errors.RealisIDInputError, match=r"^RealisID Apply Local Branch: input 'people': .* trained to "
                                                        r"attend to the prompt, not to identities"):
        local(comfy, make_people(identity=tokens()), net="sd15_local_text")
    assert residuals(comfy, local(comfy, make_people(), net="sd15_local_text")[0]) is not None


@pytest.mark.parametrize("apply", ["local", "global"])
def test_a_steering_window_that_ends_before_it_starts_is_refused(comfy, people, apply):
    errors = pack_module("realisid_core.errors")
    node = {"local": "RealisID Apply Local Branch", "global": "RealisID Apply Global Branch"}[apply]
    run = {"local": local, "global": global_}[apply]
    with pytest.raises(errors.RealisIDInputError, match=rf"^{node}: input 'start_percent': start_percent 0.8 is after "
                                                        r"end_percent 0.3, so the branch would never steer"):
        run(comfy, people, start=0.8, end=0.3)
    assert run(comfy, people, start=0.5, end=0.5)  # an empty window is the artist's to choose


def test_sampling_time_errors_name_the_node_that_attached_the_control(comfy, people):
    errors = pack_module("realisid_core.errors")
    control = local(comfy, people)[0][0][1]["control"]
    assert control.node_name == "RealisID Apply Local Branch" and control.copy().node_name == control.node_name
    with pytest.raises(errors.RealisIDInputError, match=r"^RealisID Apply Local Branch: input 'people'"):
        residuals(comfy, local(comfy, people)[0], x=torch.randn(1, 4, 16, 16))
