"""InfiniteYou's InfuseNet through RealisID, in-process with ComfyUI's own loaders and FLUX.

- InfuseNet written by diffusers (`FluxControlNetModel.save_pretrained`, InfiniteYou's folder
  layout) and read by ComfyUI's `load_controlnet`: its residuals equal diffusers' forward called
  the way InfiniteYou's pipeline calls it (identity tokens as the only context, zero txt ids,
  pooled text, guidance 1.0, the VAE-latent hint), and ComfyUI repeats each over ceil(19/n) and
  ceil(38/m) of FLUX's blocks.
- The local branch with one face whose crop is the whole frame equals InfuseNet on the whole frame.
"""
import numpy as np
import pytest
import torch

from fixtures import flux_models
from fixtures.host import host_node, load_pack, pack_module

T = 0.7


@pytest.fixture(scope="module")
def infuse():
    diffusers = pytest.importorskip("diffusers")
    load_pack()
    import comfy.controlnet
    folder = flux_models.infusenet_folder()
    comfy_cn = comfy.controlnet.load_controlnet(str(folder / "diffusion_pytorch_model.safetensors"))
    reference = diffusers.FluxControlNetModel.from_pretrained(str(folder), torch_dtype=torch.float32).eval()
    yield {"folder": folder, "comfy": comfy_cn, "diffusers": reference}


def inputs(seed=0, size=8, batch=1):
    g = torch.Generator().manual_seed(seed)
    return dict(latent=torch.randn(batch, 16, size, size, generator=g), hint=torch.randn(batch, 16, size, size, generator=g),
                tokens=torch.randn(batch, 8, 4096, generator=g), pooled=torch.randn(batch, 768, generator=g))


def pack(latent):
    b, c, h, w = latent.shape  # diffusers' _pack_latents
    return latent.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w // 4, c * 4)


def diffusers_residuals(model, x, t=T):
    """InfuseNet called as InfiniteYou's FluxInfuseNetPipeline calls it."""
    b, _, h, w = x["latent"].shape
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    with torch.no_grad():
        double, single = model(hidden_states=pack(x["latent"]), controlnet_cond=pack(x["hint"]), conditioning_scale=1.0,
                               timestep=torch.full((b,), t), guidance=torch.full((b,), 1.0),
                               pooled_projections=x["pooled"], encoder_hidden_states=x["tokens"],
                               txt_ids=torch.zeros(8, 3), img_ids=ids.reshape(-1, 3), return_dict=False)
    return double, single


def comfy_residuals(control_net, x):
    with torch.no_grad():
        return control_net.control_model(x=x["latent"], hint=x["hint"], timesteps=torch.full((x["latent"].shape[0],), T),
                                         context=x["tokens"], y=x["pooled"], guidance=torch.full((x["latent"].shape[0],), 1.0))


def close(a, b, rel=1e-4):
    return float((a - b).abs().max() / b.abs().max()) < rel


def test_infusenet_through_comfyuis_loader_equals_diffusers_forward(infuse):
    import comfy.ldm.flux.controlnet
    cn = infuse["comfy"]
    assert isinstance(cn.control_model, comfy.ldm.flux.controlnet.ControlNetFlux) and cn.control_model.latent_input
    config = flux_models.config_of(infuse["folder"])
    x = inputs()
    double, single = diffusers_residuals(infuse["diffusers"], x)
    out = comfy_residuals(cn, x)
    assert len(double) == config["num_layers"] and len(single) == config["num_single_layers"]
    assert len(out["input"]) == 19 and len(out["output"]) == 38
    assert close(out["input"][0], double[0]) and close(out["output"][0], single[0])
    # each residual serves ceil(19/n) double and ceil(38/m) single blocks: one tensor, repeated
    assert all(r is out["input"][0] for r in out["input"]) and all(r is out["output"][0] for r in out["output"])
    assert pack_module("realisid_core.models.infuse").repeats(19, config["num_layers"]) == 19


# ---------------------------------------------------------------- the local branch on FLUX's tokens

KEYPOINTS = np.array([[-0.2, -0.12], [0.2, -0.12], [0.0, 0.08], [-0.15, 0.25], [0.15, 0.25]])  # box frame
SIGMA = 0.6


def draw_kps_reference(size, kps, stick=4, radius=10):
    """InfiniteYou's draw_kps (pipelines/pipeline_infu_flux.py), written from its description; its pixel
    sizes (stick 4, radius 10) are for a ~1024-pixel frame, and RealisID draws a crop as that frame."""
    import cv2
    import math
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]
    out = np.zeros([size, size, 3])
    for a, b in ((0, 2), (1, 2), (3, 2), (4, 2)):
        x, y = kps[[a, b], 0], kps[[a, b], 1]
        length = ((x[0] - x[1]) ** 2 + (y[0] - y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(y[0] - y[1], x[0] - x[1]))
        polygon = cv2.ellipse2Poly((int(np.mean(x)), int(np.mean(y))), (int(length / 2), stick), int(angle), 0, 360, 1)
        out = cv2.fillConvexPoly(out.copy(), polygon, colours[a])
    out = (out * 0.6).astype(np.uint8)
    for k, (x, y) in enumerate(kps):
        out = cv2.circle(out.copy(), (int(x), int(y)), radius, colours[k], -1)
    return out


@pytest.fixture(scope="module")
def flux(infuse):
    import comfy.sd
    import comfy.supported_models
    import comfy.utils
    config = comfy.supported_models.Flux(dict(flux_models.FLUX_TEST_UNET))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, device="meta")  # shapes and model sampling only
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(flux_models.flux_vae())))
    import folder_paths
    folder = flux_models.image_proj_bin().parent
    folder_paths.add_model_folder_path("infinite_you", str(folder))
    projector = host_node("RealisID_LoadInfiniteYouProjector").load("image_proj_model.bin")[0]
    yield {"model": model, "vae": vae, "projector": projector, "folder": folder}
    folder_paths.folder_names_and_paths["infinite_you"][0].remove(str(folder))


def identity(seed, pack="arcface-ir-se50"):
    core = pack_module("realisid_core.people.identity")
    return core.Identity(core.unit(torch.randn(1, 512, generator=torch.Generator().manual_seed(seed))), None, pack)


def people(boxes, identities, frame=(128, 128), strengths=None):
    core = pack_module("realisid_core.people.people")
    pose = pack_module("realisid_core.faces.pose").FacePose
    persons = []
    for k, (box, ident) in enumerate(zip(boxes, identities)):
        cx, cy, w, h = box
        px = np.array([cx * frame[0], cy * frame[1]])
        side = max(w * frame[0], h * frame[1])
        face_box = (px[0] - side / 2, px[1] - side / 2, px[0] + side / 2, px[1] + side / 2)
        persons.append(core.Person(core.Place(tuple(box), frame, "test"), identity=ident,
                                   pose=pose.from_points(KEYPOINTS * side + px, face_box),
                                   strength=1.0 if strengths is None else strengths[k]))
    return core.People(tuple(persons))


def flux_conditioning(seed):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 16, 4096, generator=g), {"pooled_output": torch.randn(1, 768, generator=g),
                                                     "guidance": 3.5}]]


def apply(infuse, flux, crowd, strength=0.8, working_size=32, feather=0.0, control_net=None, model=None):
    return host_node("RealisID_ApplyInfiniteYou").apply(
        model or flux_patcher(flux), flux_conditioning(1), flux_conditioning(2), control_net or infuse["comfy"],
        flux["projector"], crowd, flux["vae"], strength, 0.0, 1.0, working_size, feather, 1.0)


def flux_patcher(flux):
    import comfy.model_patcher
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(flux["model"], load_device=cpu, offload_device=cpu)


def control_of(positive, flux):
    control = positive[0][1]["control"]
    control.pre_run(flux["model"], lambda p: flux["model"].model_sampling.percent_to_sigma(p))
    return control


def call(control, x, kinds=(0,), area=None):
    g = torch.Generator().manual_seed(0)  # the same text on every row and call
    cond = {"c_crossattn": torch.randn(1, 16, 4096, generator=g).expand(x.shape[0], -1, -1),
            "y": torch.randn(1, 768, generator=g).expand(x.shape[0], -1),
            "guidance": torch.full((x.shape[0],), 3.5)}
    if area is not None:
        cond["realisid_area"] = torch.tensor([area], dtype=torch.float32).repeat(x.shape[0], 1)
    with torch.no_grad():
        return control.get_control(x, torch.full((x.shape[0],), SIGMA), cond, 1, {"cond_or_uncond": list(kinds)}), cond


def test_one_face_whose_crop_is_the_whole_frame_equals_infusenet_on_the_whole_frame(infuse, flux):
    margin = pack_module("realisid_core.models.infuse").INFINITEYOU_INFUSENET.margin
    side = 1 / margin  # the face's crop square is the whole 32×32-cell (256 px) frame
    ident = identity(3)
    crowd = people([(0.5, 0.5, side, side)], [ident], frame=(256, 256))
    positive, _ = apply(infuse, flux, crowd, strength=0.8, working_size=32)
    control = control_of(positive, flux)
    x = torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(5))
    out, cond = call(control, x)
    # InfiniteYou's way: keypoints drawn on the whole frame, VAE-encoded, InfuseNet with the tokens as context
    kps = KEYPOINTS * 256 * side + 128
    pixels = torch.from_numpy(draw_kps_reference(256, kps, stick=1, radius=2)).float()[None] / 255  # 4, 10 ×256/1024
    hint = control.latent_format.process_in(flux["vae"].encode(pixels))
    tokens = pack_module("realisid_core.models.projector").project(flux["projector"].model, ident).tokens
    double, single = diffusers_residuals(infuse["diffusers"], dict(latent=x, hint=hint, tokens=tokens,
                                                                   pooled=cond["y"]), t=SIGMA)
    assert out["input"][0].shape == (1, 256, 3072) and len(out["input"]) == 19 and len(out["output"]) == 38
    assert close(out["input"][0], 0.8 * double[0], rel=1e-3) and close(out["output"][0], 0.8 * single[0], rel=1e-3)


def test_strength_zero_leaves_the_conditioning_untouched(infuse, flux):
    crowd = people([(0.3, 0.4, 0.2, 0.2)], [identity(1)])
    positive, negative = flux_conditioning(1), flux_conditioning(2)
    out = host_node("RealisID_ApplyInfiniteYou").apply(flux_patcher(flux), positive, negative, infuse["comfy"],
                                                       flux["projector"], crowd, flux["vae"], 0.0, 0.0, 1.0, 32, 0.15,
                                                       1.0)
    assert out[0] is positive and out[1] is negative


def test_cfgs_unconditional_rows_get_no_infusenet_and_an_area_without_faces_gets_none(infuse, flux):
    crowd = people([(0.25, 0.25, 0.2, 0.2), (0.7, 0.6, 0.25, 0.25)], [identity(1), identity(2)], frame=(256, 256))
    control = control_of(apply(infuse, flux, crowd, working_size=32, feather=0.15)[0], flux)
    x = torch.randn(2, 16, 32, 32, generator=torch.Generator().manual_seed(2))
    both, _ = call(control, x, kinds=(0, 1))
    alone, _ = call(control, x[:1], kinds=(0,))
    assert torch.allclose(both["input"][0][:1], alone["input"][0], atol=1e-5)
    assert torch.count_nonzero(both["input"][0][1]) == 0 and torch.count_nonzero(both["output"][0][1]) == 0
    assert both["input"][0] is both["input"][18]  # the 19 double blocks still share one pasted tensor
    only_uncond, _ = call(control, x[:1], kinds=(1,))
    assert only_uncond is None
    # a Set Area conditioning over the picture's top-right corner, where no face is
    corner, _ = call(control, x[:1, :, :8, :8], area=(0, 24, 8, 8))
    assert corner is None
    control.cleanup()


def test_residuals_stay_inside_each_faces_square(infuse, flux):
    crowd = people([(0.25, 0.25, 0.15, 0.15)], [identity(1)], frame=(256, 256))
    control = control_of(apply(infuse, flux, crowd, working_size=32, feather=0.0)[0], flux)
    out, _ = call(control, torch.randn(1, 16, 32, 32))
    grid = out["input"][0].reshape(16, 16, 3072).abs().sum(-1)
    # the square: side 2×0.15×32 = 9.6 cells around (8, 8) → cells 3.2..12.8 → patches 1..6
    assert torch.count_nonzero(grid[7:, :]) == 0 and torch.count_nonzero(grid[:, 7:]) == 0
    assert torch.count_nonzero(grid[2:6, 2:6]) == 16


def test_an_interrupt_stops_the_branch_between_chunks(infuse, flux):
    import comfy.model_management
    crowd = people([(0.3, 0.3, 0.2, 0.2)], [identity(1)], frame=(256, 256))
    control = control_of(apply(infuse, flux, crowd, working_size=32)[0], flux)
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            call(control, torch.randn(1, 16, 32, 32))
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_memory_asked_of_comfyui_counts_the_face_crops(infuse, flux):
    one = control_of(apply(infuse, flux, people([(0.3, 0.3, 0.2, 0.2)], [identity(1)]))[0], flux)
    four = control_of(apply(infuse, flux, people([(0.2 + 0.2 * k, 0.5, 0.1, 0.1) for k in range(4)],
                                                 [identity(k) for k in range(4)]))[0], flux)
    assert four.inference_memory_requirements(torch.float32) > one.inference_memory_requirements(torch.float32) > 0


# ---------------------------------------------------------------- refusals

def test_an_sd_controlnet_on_infiniteyou_is_refused(infuse, flux):
    import comfy.controlnet
    from fixtures import tiny_models
    sd_cn = comfy.controlnet.load_controlnet(str(tiny_models.sd15_controlnet()))
    with pytest.raises(Exception, match="not a FLUX ControlNet"):
        apply(infuse, flux, people([(0.3, 0.3, 0.2, 0.2)], [identity(1)]), control_net=sd_cn)


def test_infusenet_on_an_sdxl_model_is_refused(infuse, flux):
    import comfy.model_patcher
    import comfy.supported_models
    from fixtures import instantid_models
    config = comfy.supported_models.Segmind_Vega(dict(instantid_models.VEGA_UNET))
    config.set_inference_dtype(torch.float32, None)
    sdxl = comfy.model_patcher.ModelPatcher(config.get_model({}, device="meta"), load_device="cpu", offload_device="cpu")
    with pytest.raises(Exception, match="ControlNet for FLUX"):
        apply(infuse, flux, people([(0.3, 0.3, 0.2, 0.2)], [identity(1)]), model=sdxl)


def test_an_identity_made_with_antelopev2_is_refused(infuse, flux):
    with pytest.raises(Exception, match="antelopev2 recogniser.*IR-SE50"):
        apply(infuse, flux, people([(0.3, 0.3, 0.2, 0.2)], [identity(1, pack="antelopev2")]))


class Payload:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_projector_pickle_holding_code_is_refused_unrun(flux, tmp_path, capsys):
    bad = flux["folder"] / "realisid_test_code.bin"
    torch.save({"image_proj": {"latents": Payload()}}, bad)
    try:
        with pytest.raises(Exception, match="could run code"):
            host_node("RealisID_LoadInfiniteYouProjector").load("realisid_test_code.bin")
        assert "this ran" not in capsys.readouterr().out
    finally:
        bad.unlink()


def test_an_instantid_adapter_as_projector_is_refused_for_its_width(flux):
    from fixtures import instantid_models
    name = "realisid_test_instantid_as_projector.bin"
    torch.save({"image_proj": instantid_models.resampler_state(1, dim=128, heads=2)}, flux["folder"] / name)
    try:
        with pytest.raises(Exception, match="2048-wide tokens"):
            host_node("RealisID_LoadInfiniteYouProjector").load(name)
    finally:
        (flux["folder"] / name).unlink()


# ---------------------------------------------------------------- the IR-SE50 identity

def test_an_identity_made_with_ir_se50_is_the_recognisers_vector_of_the_aligned_face(infuse, flux):
    pytest.importorskip("insightface")
    skimage_data = pytest.importorskip("skimage.data")
    import folder_paths
    from fixtures.fake_insightface import fake_insightface_root, paint_face
    folder_paths.add_model_folder_path("insightface", fake_insightface_root())
    pth = flux_models.ir_se50_pth()
    folder_paths.add_model_folder_path("facexlib", str(pth.parent))
    try:
        bgr = paint_face(np.ascontiguousarray(skimage_data.astronaut()[..., ::-1]), 384, 128, 60)
        image = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).float()[None] / 255
        analyzer = host_node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")[0]
        recogniser = host_node("RealisID_LoadFaceRecogniser").load(pth.name)[0]
        assert host_node("RealisID_LoadFaceRecogniser").load(pth.name)[0] is recogniser  # one shared copy
        ident = host_node("RealisID_IdentityIRSE50").identify(analyzer, recogniser, image, "error")[0]
        assert ident.pack == "arcface-ir-se50" and ident.embeddings.shape == (1, 512)
        face = max(analyzer.analyze(bgr), key=lambda f: f.area)
        ir = pack_module("realisid_core.models.arcface_ir_se50")
        expected = ir.embed(ir.load_recogniser(str(pth)), [bgr], [face.keypoints])
        assert torch.allclose(ident.embeddings, expected, atol=1e-5)
        # accepted by Apply InfiniteYou
        apply(infuse, flux, people([(0.3, 0.3, 0.2, 0.2)], [ident]))
    finally:
        folder_paths.folder_names_and_paths["facexlib"][0].remove(str(pth.parent))
        folder_paths.folder_names_and_paths["insightface"][0].remove(fake_insightface_root())


def test_an_area_conditioning_gets_the_faces_residuals_on_its_own_tokens(infuse, flux):
    crowd = people([(0.4, 0.45, 0.12, 0.12)], [identity(4)], frame=(256, 256))
    control = control_of(apply(infuse, flux, crowd, working_size=32, feather=0.15)[0], flux)
    x = torch.randn(1, 16, 32, 32, generator=torch.Generator().manual_seed(6))
    whole, _ = call(control, x)
    top, left = 6, 4  # an even offset: the area's patches are the whole picture's
    area, _ = call(control, x[:, :, top:top + 20, left:left + 20], area=(top, left, 20, 20))
    whole_grid = whole["input"][0].reshape(1, 16, 16, -1)[:, top // 2:top // 2 + 10, left // 2:left // 2 + 10]
    assert torch.allclose(area["input"][0].reshape(1, 10, 10, -1), whole_grid, atol=1e-5)
    assert torch.count_nonzero(whole_grid) > 0
    control.cleanup()


def test_the_infusenet_loader_keeps_one_copy_per_file(infuse):
    import folder_paths
    folder = str(infuse["folder"].parent)
    folder_paths.add_model_folder_path("infinite_you", folder)
    try:
        loader = host_node("RealisID_LoadInfuseNet")
        name = "InfuseNetModel/diffusion_pytorch_model.safetensors"
        first = loader.load(name)[0]
        assert loader.load(name)[0] is first
        assert getattr(first, "realisid_description").name == "InfiniteYou InfuseNet"
    finally:
        folder_paths.folder_names_and_paths["infinite_you"][0].remove(folder)
