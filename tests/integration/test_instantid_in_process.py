"""InstantID through RealisID, in-process with ComfyUI's own loaders and U-Net.

- IdentityNet built by diffusers from InstantID's config (Vega-depth variant), saved with
  save_pretrained and loaded by ComfyUI's load_controlnet: the local branch's call gives the same
  residuals as diffusers' ControlNetModel called InstantID's way (identity tokens as the only
  context, pooled text + time ids, the keypoint hint).
- The adapter's layers in diffusers' processor order = ComfyUI's block keys; the patch fires on
  every layer (middle block included), chains after another pack's attn2 replacement, leaves the
  U-Net bit-identical outside its window, gives CFG's unconditional rows the null tokens.
- Refusals with clear messages.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch

from fixtures import instantid_models
from fixtures.host import host_node, load_pack, pack_module

SIGMA = 5.0
TINY_XL = dict(image_size=32, in_channels=4, out_channels=4, model_channels=64, num_res_blocks=[1, 1],
               channel_mult=[1, 2], transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1],
               transformer_depth_middle=1, context_dim=2048, num_head_channels=32, use_spatial_transformer=True,
               use_linear_in_transformer=True, legacy=False, adm_in_channels=2816, num_classes="sequential",
               use_temporal_attention=False, use_temporal_resblock=False)
SMALL_RESAMPLER = dict(dim=128, depth=4, heads=2, num_queries=16, embedding_dim=512, output_dim=2048, ff_mult=4)
KEYPOINTS = np.array([[-0.2, -0.12], [0.2, -0.12], [0.0, 0.08], [-0.15, 0.25], [0.15, 0.25]])  # box frame


def patcher(base):
    import comfy.model_patcher
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)


def sdxl_model(config, seed=3, device=None):
    import comfy.supported_models
    cls = comfy.supported_models.Segmind_Vega if config is instantid_models.VEGA_UNET else comfy.supported_models.SDXL
    model_config = cls(dict(config))
    model_config.set_inference_dtype(torch.float32, None)
    base = model_config.get_model({}, device=device)
    if device is None:
        base.diffusion_model.load_state_dict(instantid_models.randomize(base.diffusion_model.state_dict().items(), seed))
    return patcher(base.eval())


def save_adapter(folder, name, widths, seed=0, **resampler):
    data = {"image_proj": instantid_models.resampler_state(seed, **resampler),
            "ip_adapter": instantid_models.ip_layers_state(widths, seed=seed + 1)}
    torch.save(data, folder / name)
    return data


@pytest.fixture(scope="module")
def xl(tmp_path_factory):
    pytest.importorskip("diffusers")
    load_pack()
    import comfy.controlnet
    import folder_paths
    folder = tmp_path_factory.mktemp("instantid")
    folder_paths.add_model_folder_path("instantid", str(folder))
    identitynet = instantid_models.identitynet_folder()
    vega = sdxl_model(instantid_models.VEGA_UNET, device="meta")  # shapes and model sampling only
    tiny = sdxl_model(TINY_XL)
    tiny_widths = [layer.width for layer in pack_module("nodes.instantid")
                   .cross_attention_layers(tiny.model.diffusion_model)]
    save_adapter(folder, "realisid_test_vega_adapter.bin", instantid_models.VEGA_CROSS_ATTENTION, **SMALL_RESAMPLER)
    save_adapter(folder, "realisid_test_tiny_adapter.bin", tiny_widths, seed=5, **SMALL_RESAMPLER)
    loader = host_node("RealisID_InstantIDLoader")
    yield {"identitynet": identitynet,
            "controlnet": comfy.controlnet.load_controlnet(str(identitynet / "diffusion_pytorch_model.safetensors")),
            "vega": vega, "tiny": tiny, "folder": folder,
            "vega_adapter": loader.load("realisid_test_vega_adapter.bin")[0],
            "tiny_adapter": loader.load("realisid_test_tiny_adapter.bin")[0]}
    folder_paths.folder_names_and_paths["instantid"][0].remove(str(folder))  # leave the process as found


def identity(seed, pack="antelopev2", norm=24.0):
    core = pack_module("realisid_core.people.identity")
    vector = torch.randn(1, 512, generator=torch.Generator().manual_seed(seed))
    return core.Identity(core.unit(vector), torch.tensor([norm]), pack)


def people(boxes, identities, frame=(256, 256)):
    core = pack_module("realisid_core.people.people")
    pose = pack_module("realisid_core.faces.pose").FacePose
    persons = []
    for box, ident in zip(boxes, identities):
        cx, cy, w, h = box
        px = np.array([cx * frame[0], cy * frame[1]])
        side = max(w * frame[0], h * frame[1])
        points = KEYPOINTS * side + px
        face_box = (px[0] - side / 2, px[1] - side / 2, px[0] + side / 2, px[1] + side / 2)
        persons.append(core.Person(core.Place(tuple(box), frame, "test"), identity=ident,
                                   pose=pose.from_points(points, face_box)))
    return core.People(tuple(persons))


def conditioning(seed, batch=1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(batch, 77, 2048, generator=g), {"pooled_output": torch.randn(batch, 1280, generator=g)}]]


def apply(xl, crowd, model="tiny", control_net=None, cn_strength=0.0, ip_weight=0.8, ip_start=0.0, ip_end=1.0,
          working_size="as trained", margin=1.5, mask=None, adapter=None, cn_start=0.0, cn_end=1.0, **more):
    return host_node("RealisID_ApplyInstantID").apply(
        xl[model], conditioning(1), conditioning(2), xl["controlnet"] if control_net is None else control_net,
        xl[adapter or f"{model}_adapter"], crowd, cn_strength, cn_start, cn_end, ip_weight, ip_start, ip_end, working_size,
        0.15, margin, mask=mask, **more)


# ---------------------------------------------------------------- IdentityNet: file, convention

class Recorder:
    """Stands in for the ControlNet module: records what the local branch passes and gets back."""

    def __init__(self, module):
        self.module, self.calls = module, []

    def __call__(self, **kwargs):
        out = self.module(**kwargs)
        self.calls.append((kwargs, out))
        return out

    def __getattr__(self, name):
        return getattr(self.module, name)


def test_identitynet_from_diffusers_loads_through_comfyuis_loader(xl):
    import comfy.cldm.cldm
    import comfy.controlnet
    cn = xl["controlnet"]
    assert type(cn) is comfy.controlnet.ControlNet and isinstance(cn.control_model, comfy.cldm.cldm.ControlNet)
    layout = pack_module("nodes.controls").controlnet_layout(cn)
    assert (layout.context_dim, layout.adm_in_channels, layout.family) == (2048, 2816, "SDXL")
    # ComfyUI's Load ControlNet Model node reads the same file
    import folder_paths
    folder_paths.add_model_folder_path("controlnet", str(xl["identitynet"]))
    try:
        loaded = host_node("ControlNetLoader").load_controlnet("diffusion_pytorch_model.safetensors")[0]
    finally:
        folder_paths.folder_names_and_paths["controlnet"][0].remove(str(xl["identitynet"]))
    assert isinstance(loaded.control_model, comfy.cldm.cldm.ControlNet)


def test_local_branch_calls_identitynet_the_way_instantids_pipeline_calls_diffusers(xl):
    """One crop, timestep, tokens, hint and added conditioning: ComfyUI's converted model as the
    local branch calls it and diffusers' ControlNetModel called InstantID's way give the same residuals."""
    from diffusers import ControlNetModel
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin
    loader = pack_module("nodes.controlnet_loader")
    described = pack_module("realisid_core.models.description").INSTANTID_IDENTITYNET
    cn = xl["controlnet"].copy()
    setattr(cn, loader.DESCRIPTION_ATTRIBUTE, replace(described, working_size=16))  # 128-px hints: CPU speed
    person = identity(7)
    crowd = people([(0.45, 0.4, 0.3, 0.3)], [person])
    positive, negative = apply(xl, crowd, model="vega", control_net=cn, cn_strength=1.0, ip_weight=0.0)[1:]
    control = positive[0][1]["control"]
    assert negative[0][1]["control"] is control  # cond and uncond share one control, batched together
    vega = xl["vega"].model
    control.pre_run(vega, vega.model_sampling.percent_to_sigma)
    recorder = control.control_model = Recorder(control.control_model)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 4, 32, 32, generator=g)  # 256×256 px; rows: cond, uncond
    pooled = torch.randn(2, 1280, generator=g)
    y = torch.cat([pooled, torch.randn(2, 1536, generator=g)], dim=1)  # the picture's own size part is replaced
    sigma = torch.full((2,), SIGMA)
    with torch.no_grad():
        control.get_control(x, sigma, {"c_crossattn": torch.randn(2, 77, 2048, generator=g), "y": y}, 1,
                            {"cond_or_uncond": [0, 1]})
    control.cleanup()
    (got, residuals), = recorder.calls
    assert got["x"].shape == (2, 4, 16, 16) and got["hint"].shape == (2, 3, 128, 128)
    # the discrete timestep of sigma (an integer step, as diffusers' schedulers give), in the model's dtype
    torch.testing.assert_close(got["timesteps"], vega.model_sampling.timestep(sigma).float())

    # what InstantID's pipeline gives diffusers: the Resampler's tokens of the raw embedding (zero for uncond)
    adapter = xl["vega_adapter"].model
    image_proj = {k: v for k, v in adapter.resampler.state_dict().items()}
    projection = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers(
        None, image_proj, low_cpu_mem_usage=False).eval()
    with torch.no_grad():
        tokens = projection(torch.cat([person.raw(), torch.zeros(1, 512)])[:, None])
    time_ids = torch.tensor([[128.0, 128.0, 0.0, 0.0, 128.0, 128.0]]).expand(2, -1)  # a 128-px picture, uncropped
    # the hint: InstantID's drawing, RGB in 0…1 as diffusers' ControlNet image processor gives it (the five
    # discs at full intensity: red, green, blue, yellow, magenta), the same for both rows
    hint = got["hint"][0]
    pixels = {tuple(p) for p in hint.flatten(1).T.tolist()}
    assert {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 1.0)} <= pixels
    assert torch.equal(got["hint"][1], hint)

    net = ControlNetModel.from_pretrained(str(xl["identitynet"]), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        down, middle = net(got["x"], got["timesteps"], encoder_hidden_states=tokens, controlnet_cond=got["hint"],
                           added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)
    del net
    assert len(down) == len(residuals["output"]) == 9
    for i, (want, have) in enumerate(zip(down, residuals["output"])):
        torch.testing.assert_close(have, want, rtol=2e-4, atol=2e-4 * float(want.abs().max()), msg=f"level {i}")
    torch.testing.assert_close(residuals["middle"][0], middle, rtol=2e-4, atol=2e-4 * float(middle.abs().max()))
    assert float(middle.abs().mean()) > 0.01  # random weights: far from the zero a fresh ControlNet gives


def test_identitynet_from_comfyuis_own_loader_is_taken_as_instantid(xl):
    person = identity(8)
    positive, negative = apply(xl, people([(0.5, 0.45, 0.3, 0.3)], [person]), model="vega", cn_strength=0.9,
                               ip_weight=0.0)[1:]
    control = positive[0][1]["control"]
    spec = control.spec
    assert (spec.hint_format, spec.settings.working_size, spec.settings.margin) == ("instantid-kps", 128, 2.0)
    assert control.strength == 0.9
    resampler = xl["vega_adapter"].model.resampler
    with torch.no_grad():
        torch.testing.assert_close(spec.identity.tokens, resampler(person.raw()), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(spec.identity.null, resampler(torch.zeros(1, 512)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the adapter half

def test_layers_in_diffusers_processor_order_are_comfyuis_block_keys():
    """The n-th attn2 processor of diffusers' SDXL U-Net (key 2n+1 of ip-adapter.bin) is ComfyUI's
    layer n, with the same width, in the blocks the reference lists (middle last)."""
    diffusers = pytest.importorskip("diffusers")
    load_pack()
    layers_of = pack_module("nodes.instantid").cross_attention_layers
    sdxl_diffusers = dict(block_out_channels=[320, 640, 1280], down_block_types=["DownBlock2D", "CrossAttnDownBlock2D",
                          "CrossAttnDownBlock2D"], up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                          transformer_layers_per_block=[1, 2, 10], attention_head_dim=[5, 10, 20],
                          cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                          addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
    vega_diffusers = dict(sdxl_diffusers, transformer_layers_per_block=[1, 1, 2], mid_block_type="UNetMidBlock2D")
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import comfy.ops
    sdxl = dict(instantid_models.VEGA_UNET, transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_middle=10,
                transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10])
    built = {}
    for comfy_config, diffusers_config, widths in ((sdxl, sdxl_diffusers, instantid_models.SDXL_CROSS_ATTENTION),
                                                   (instantid_models.VEGA_UNET, vega_diffusers,
                                                    instantid_models.VEGA_CROSS_ATTENTION)):
        with torch.device("meta"):
            theirs = diffusers.UNet2DConditionModel(**diffusers_config)
            ours = UNetModel(**{k: v for k, v in comfy_config.items() if not k.startswith("use_temporal")},
                             operations=comfy.ops.disable_weight_init)
        modules = dict(theirs.named_modules())
        processors = list(theirs.attn_processors)
        cross = [modules[name.rsplit(".", 1)[0]].to_q.out_features for name in processors if ".attn2." in name]
        assert all(".attn2." in processors[n] for n in range(1, len(processors), 2))  # ip-adapter keys: odd n
        built[id(comfy_config)] = layers = layers_of(ours)
        assert cross == [layer.width for layer in layers] == widths
    keys = [layer.key for layer in built[id(sdxl)]]
    assert keys[:4] == [("input", 4, 0), ("input", 4, 1), ("input", 5, 0), ("input", 5, 1)]
    assert keys[4] == ("input", 7, 0) and keys[24] == ("output", 0, 0) and keys[54] == ("output", 3, 0)
    assert keys[60:] == [("middle", 0, i) for i in range(10)]  # ComfyUI 0.3.64 names its middle block ("middle", 0)


def unet_out(model, x, sigma, cond, options=None):
    """The U-Net's output as the sampler calls it: the patcher's transformer options + CFG's row kinds."""
    transformer_options = {**model.model_options["transformer_options"], **(options or {}), "sigmas": sigma}
    with torch.no_grad():
        return model.model.apply_model(x, sigma, c_crossattn=cond[0], y=cond[1], transformer_options=transformer_options)


def latent_and_cond(batch=2, seed=4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, 16, 16, generator=g),
            (torch.randn(batch, 77, 2048, generator=g), torch.randn(batch, 2816, generator=g)))


def test_patch_fires_on_every_layer_and_chains_after_another_packs_replacement(xl):
    base = xl["tiny"]
    layers = pack_module("nodes.instantid").cross_attention_layers(base.model.diffusion_model)
    assert any(layer.block[0] == "middle" for layer in layers)
    import comfy.ldm.modules.attention as attention
    seen = []

    def other_pack(q, k, v, extra_options):  # another pack's attn2 replacement: doubles the text attention
        seen.append((*extra_options["block"], extra_options["block_index"]))
        return 2 * attention.optimized_attention(q, k, v, extra_options["n_heads"])

    other = base.clone()
    for i, layer in enumerate(layers):  # half registered per layer, half per block, as packs do
        if i % 2:
            other.set_model_attn2_replace(other_pack, layer.block[0], layer.block[1], layer.index)
        else:
            other.set_model_attn2_replace(other_pack, layer.block[0], layer.block[1])
    crowd = people([(0.3, 0.35, 0.3, 0.3)], [identity(1)])
    x, cond = latent_and_cond()
    options = {"cond_or_uncond": [0, 1]}
    sigma = torch.full((2,), SIGMA)
    both = host_node("RealisID_ApplyInstantID").apply(
        other, conditioning(1), conditioning(2), xl["controlnet"], xl["tiny_adapter"], crowd, 0.0, 0.0, 1.0, 1.0,
        0.0, 1.0, "as trained", 0.15, 1.5)[0]
    seen.clear()
    with_identity = unet_out(both, x, sigma, cond, options)
    assert sorted(seen) == sorted(layer.key for layer in layers)  # every layer, the middle one too, once each
    seen.clear()
    only_other = unet_out(other, x, sigma, cond, options)
    assert len(seen) == len(layers) and not torch.allclose(with_identity, only_other)
    assert not torch.allclose(only_other, unet_out(base, x, sigma, cond, options))  # the other pack did act


def test_weight_zero_and_outside_the_window_are_bit_identical_to_no_patch(xl):
    base = xl["tiny"]
    crowd = people([(0.5, 0.5, 0.4, 0.4)], [identity(2)])
    x, cond = latent_and_cond()
    sigma = torch.full((2,), SIGMA)
    options = {"cond_or_uncond": [0, 1]}
    plain = unet_out(base, x, sigma, cond, options)
    unpatched = apply(xl, crowd, ip_weight=0.0)[0]
    assert unpatched is base
    sampling = base.model.model_sampling
    later = float(sampling.percent_to_sigma(0.5))
    assert later < SIGMA  # sigma 5 is early: a window starting at 50 % excludes it
    window = apply(xl, crowd, ip_weight=1.0, ip_start=0.5, ip_end=1.0)[0]
    assert torch.equal(unet_out(window, x, sigma, cond, options), plain)
    active = apply(xl, crowd, ip_weight=1.0)[0]
    assert not torch.allclose(unet_out(active, x, sigma, cond, options), plain)
    assert torch.equal(unet_out(active, x, torch.full((2,), later / 2), cond, options),
                       unet_out(window, x, torch.full((2,), later / 2), cond, options))


def test_unconditional_rows_get_the_null_tokens_through_the_unet(xl):
    x, cond = latent_and_cond()
    sigma = torch.full((2,), SIGMA)
    box = [(0.5, 0.5, 0.4, 0.4)]
    alice, bob = apply(xl, people(box, [identity(3)]))[0], apply(xl, people(box, [identity(4)]))[0]
    uncond, cond_rows = {"cond_or_uncond": [1]}, {"cond_or_uncond": [0]}
    assert torch.equal(unet_out(alice, x, sigma, cond, uncond), unet_out(bob, x, sigma, cond, uncond))
    assert not torch.allclose(unet_out(alice, x, sigma, cond, cond_rows), unet_out(bob, x, sigma, cond, cond_rows))
    # and the null tokens do act on the unconditional rows (InstantID's convention, not "no identity term")
    assert not torch.equal(unet_out(alice, x, sigma, cond, uncond), unet_out(xl["tiny"], x, sigma, cond, uncond))


def test_first_layer_output_changes_only_in_each_persons_region(xl):
    """At the first cross-attention (before the U-Net mixes positions) a person's identity changes the
    attention output only inside their region, and each person's region gets their own."""
    import comfy.ldm.modules.attention as attention
    layers = pack_module("nodes.instantid").cross_attention_layers(xl["tiny"].model.diffusion_model)
    first = layers[0]
    boxes = [(0.25, 0.3, 0.2, 0.2), (0.75, 0.7, 0.2, 0.2)]
    a, b, c = identity(5), identity(6), identity(7)
    outs = {}
    for name, ids in {"ab": [a, b], "cb": [c, b], "ac": [a, c]}.items():
        model = apply(xl, people(boxes, ids), margin=1.5)[0]
        patch = model.model_options["transformer_options"]["patches_replace"]["attn2"][first.key]
        g = torch.Generator().manual_seed(9)
        q, k, v = (torch.randn(2, 64, first.width, generator=g) for _ in range(3))
        options = {"n_heads": first.width // 32, "attn_precision": None, "cond_or_uncond": [0],
                   "activations_shape": [2, first.width, 8, 8], "original_shape": [2, 4, 16, 16],
                   "sigmas": torch.full((2,), SIGMA)}
        outs[name] = patch(q, k, v, options)
        outs["base"] = attention.optimized_attention(q, k, v, first.width // 32)
    weights = pack_module("realisid_core.branches.identity_attention").region_weights(torch.tensor(boxes), 1.5, 8, 8)
    person_1, person_2 = weights[0] > 0, weights[1] > 0
    outside = ~(person_1 | person_2)
    assert torch.equal(outs["ab"][:, outside], outs["base"][:, outside])
    changed = (outs["ab"] != outs["cb"]).any(-1).any(0)  # person 1's identity changed
    assert torch.equal(changed, person_1)
    changed = (outs["ab"] != outs["ac"]).any(-1).any(0)  # person 2's identity changed
    assert torch.equal(changed, person_2)


def test_mask_replaces_the_grown_box_region(xl):
    layers = pack_module("nodes.instantid").cross_attention_layers(xl["tiny"].model.diffusion_model)
    first = layers[0]
    mask = torch.zeros(1, 256, 256)
    mask[:, 128:, :] = 1  # the lower half of the picture, far from the face box
    g = torch.Generator().manual_seed(10)
    q, k, v = (torch.randn(1, 64, first.width, generator=g) for _ in range(3))
    options = {"n_heads": first.width // 32, "attn_precision": None, "cond_or_uncond": [0],
               "activations_shape": [1, first.width, 8, 8], "sigmas": torch.full((1,), SIGMA)}
    outs = []
    for ident in (identity(11), identity(12)):
        model = apply(xl, people([(0.5, 0.2, 0.2, 0.2)], [ident]), mask=mask)[0]
        outs.append(model.model_options["transformer_options"]["patches_replace"]["attn2"][first.key](q, k, v, options))
    changed = (outs[0] != outs[1]).any(-1)[0].reshape(8, 8)
    assert changed[4:].all() and not changed[:4].any()


# ---------------------------------------------------------------- refusals

def test_refusals_name_the_problem(xl, tiny):
    import comfy.controlnet
    import comfy.sd
    errors = pack_module("realisid_core.errors")
    crowd = people([(0.5, 0.45, 0.3, 0.3)], [identity(1)])
    sd15 = comfy.sd.load_checkpoint_guess_config(str(tiny["sd15"]))[0]
    with pytest.raises(errors.RealisIDInputError, match=r"model being sampled is SD1\.5 .* made for SDXL"):
        host_node("RealisID_ApplyInstantID").apply(sd15, conditioning(1), conditioning(2), xl["controlnet"],
                                                   xl["tiny_adapter"], crowd, 1.0, 0.0, 1.0, 0.8, 0.0, 1.0,
                                                   "as trained", 0.15, 1.5)
    with pytest.raises(errors.RealisIDInputError, match=r"this ControlNet is built for SD1\.5"):
        apply(xl, crowd, control_net=comfy.controlnet.load_controlnet(str(tiny["sd15_cn"])))
    realisid_local = comfy.controlnet.load_controlnet(str(tiny["sdxl_local"]))
    loader = pack_module("nodes.controlnet_loader")
    setattr(realisid_local, loader.DESCRIPTION_ATTRIBUTE, loader.read_description(str(tiny["sdxl_local"]), loader.AUTO))
    with pytest.raises(errors.RealisIDInputError, match=r"trained on RealisID pose-expression v1, 68 landmarks, so "
                                                        r"InstantID's keypoint drawing would be a hint it never saw"):
        apply(xl, crowd, control_net=realisid_local)
    with pytest.raises(errors.RealisIDInputError, match=r"person 2's identity was made with the buffalo_l pack.*"
                                                        r"trained on antelopev2"):
        apply(xl, people([(0.3, 0.4, 0.2, 0.2), (0.7, 0.4, 0.2, 0.2)], [identity(1), identity(2, pack="buffalo_l")]))
    tokens = pack_module("realisid_core.people.identity").IdentityTokens(torch.zeros(1, 16, 2048), torch.zeros(1, 16, 2048))
    given_tokens = people([(0.5, 0.45, 0.3, 0.3)], [None])
    given_tokens = type(given_tokens)((replace(given_tokens.persons[0], tokens=tokens),))
    with pytest.raises(errors.RealisIDInputError, match=r"person 1 was given ready identity tokens"):
        apply(xl, given_tokens)
    with pytest.raises(errors.RealisIDInputError, match=r"person 1 has no identity"):
        apply(xl, people([(0.5, 0.45, 0.3, 0.3)], [None]))
    with pytest.raises(errors.RealisIDInputError, match=r"adapter is made for a U-Net with 15 cross-attention layers"):
        apply(xl, crowd, adapter="vega_adapter")
    with pytest.raises(errors.RealisIDInputError, match=r"2 masks were given for 1 people"):
        apply(xl, crowd, mask=torch.zeros(2, 64, 64))


def test_identity_of_an_unknown_pack_is_used_with_a_warning(xl, caplog):
    with caplog.at_level("WARNING", logger="RealisID"):
        apply(xl, people([(0.5, 0.45, 0.3, 0.3)], [identity(1, pack=None)]))
    assert "person 1's identity does not say which face-analysis pack made it; InstantID expects antelopev2" in caplog.text


def test_missing_adapter_file_names_the_folder_and_the_file(xl):
    errors = pack_module("realisid_core.errors")
    loader = host_node("RealisID_InstantIDLoader", ui=True)
    with pytest.raises(errors.RealisIDInputError) as missing:
        loader.load("ip-adapter.bin")
    message = str(missing.value)
    assert "'ip-adapter.bin' was not found in the InstantID folder(s)" in message
    assert str(xl["folder"]) in message and "realisid_test_tiny_adapter.bin" in message
    assert "huggingface.co/InstantX/InstantID into models/instantid" in message
    assert type(loader).VALIDATE_INPUTS("ip-adapter.bin") == message
    assert type(loader).VALIDATE_INPUTS("realisid_test_tiny_adapter.bin") is True


def small_identitynet(xl):
    loader = pack_module("nodes.controlnet_loader")
    described = pack_module("realisid_core.models.description").INSTANTID_IDENTITYNET
    cn = xl["controlnet"].copy()
    setattr(cn, loader.DESCRIPTION_ATTRIBUTE, replace(described, working_size=16))  # 128-px hints: CPU speed
    return cn


def test_errors_of_instantids_local_branch_while_sampling_name_apply_instantid(xl):
    """Apply InstantID attaches the local branch's control: its sampling-time errors name Apply InstantID, the
    node in the artist's graph (they named RealisID Apply Local Branch)."""
    errors = pack_module("realisid_core.errors")
    crowd = people([(0.45, 0.4, 0.3, 0.3)], [identity(7)])
    control = apply(xl, crowd, model="vega", control_net=small_identitynet(xl), cn_strength=1.0,
                    ip_weight=0.0)[1][0][1]["control"]
    assert control.node_name == "RealisID Apply InstantID"
    vega = xl["vega"].model
    control.pre_run(vega, vega.model_sampling.percent_to_sigma)
    wide = torch.zeros(1, 4, 16, 32)  # places made for a square picture, a 2:1 latent
    try:
        with pytest.raises(errors.RealisIDInputError, match=r"^RealisID Apply InstantID: input 'people': the faces' "
                                                            r"places come from test, made for a 256×256 picture"):
            control.get_control(wide, torch.full((1,), SIGMA), {"c_crossattn": torch.zeros(1, 77, 2048)}, 1, {})
    finally:
        control.cleanup()


def test_uncond_noise_gives_the_negative_side_cubiqs_noise_tokens_and_zero_keeps_instantids(xl):
    """cubiq's ApplyInstantID feeds CFG's unconditional side the Resampler of noise × uniform noise seeded by the
    embedding's sum (hidden default 0.35); InstantID's pipeline, and this node at 0, a zero embedding."""
    person = identity(7)
    crowd = people([(0.45, 0.4, 0.3, 0.3)], [person])
    cn = small_identitynet(xl)
    spec = {n: apply(xl, crowd, model="vega", control_net=cn, cn_strength=1.0, ip_weight=0.0,
                     uncond_noise=n)[1][0][1]["control"].spec for n in (0.0, 0.35)}
    resampler = xl["vega_adapter"].model.resampler
    raw = person.raw()
    torch.manual_seed(int(torch.sum(raw).item()) % 1000000007)  # cubiq's own lines
    cubiq_uncond = 0.35 * torch.rand_like(raw)
    with torch.no_grad():
        zero_tokens, cubiq_tokens = resampler(torch.zeros(1, 512)), resampler(cubiq_uncond)
    torch.testing.assert_close(spec[0.0].identity.null, zero_tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(spec[0.35].identity.null, cubiq_tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(spec[0.35].identity.tokens, spec[0.0].identity.tokens, atol=0, rtol=0)


def test_a_window_that_ends_before_it_starts_is_refused_on_apply_instantid(xl):
    errors = pack_module("realisid_core.errors")
    crowd = people([(0.45, 0.4, 0.3, 0.3)], [identity(7)])
    with pytest.raises(errors.RealisIDInputError, match=r"^RealisID Apply InstantID: input 'ip_start_percent': "
                                                        r"ip_start_percent 0.9 is after ip_end_percent 0.2"):
        apply(xl, crowd, ip_start=0.9, ip_end=0.2)
    with pytest.raises(errors.RealisIDInputError, match=r"input 'cn_start_percent'"):
        apply(xl, crowd, cn_strength=1.0, cn_start=0.6, cn_end=0.5)
