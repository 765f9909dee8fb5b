"""InfiniteYou through RealisID in a real ComfyUI server, on FLUX with InfiniteYou's file formats:
one small face in a wide shot, and three people each from their own photo with their own pose.

Files (random weights, real layouts): the FLUX transformer ComfyUI detects as FLUX-dev, FLUX's
16-channel VAE, InfuseNet as diffusers writes it under models/infinite_you/aes_stage2/InfuseNetModel,
image_proj_model.bin beside it, facexlib's recognition_arcface_ir_se50.pth in models/facexlib.
T5-XXL is far too big to build, so the text conditioning comes from a test node.
"""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures import flux_models
from fixtures.comfy_server import one_picture

PHOTOS = {"infiniteyou_person_1.png": (384, 128, 60), "infiniteyou_person_2.png": (128, 384, 56),
          "infiniteyou_person_3.png": (256, 256, 64)}
INFUSENET = "aes_stage2/InfuseNetModel/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def infiniteyou_server(server):
    pytest.importorskip("diffusers")
    pytest.importorskip("insightface")
    pytest.importorskip("onnx")
    skimage_data = pytest.importorskip("skimage.data")
    from fixtures.fake_insightface import fake_insightface_root, paint_face
    server.link_models({
        "diffusion_models/flux_test_dev.safetensors": flux_models.flux_unet(),
        "vae/flux_test_ae.safetensors": flux_models.flux_vae(),
        f"infinite_you/{INFUSENET}": flux_models.infusenet_file(),
        "infinite_you/aes_stage2/image_proj_model.bin": flux_models.image_proj_bin(),
        "facexlib/recognition_arcface_ir_se50.pth": flux_models.ir_se50_pth(),
        "insightface/models/antelopev2": Path(fake_insightface_root()) / "models" / "antelopev2"})
    astronaut = np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])
    for name, (cx, cy, side) in PHOTOS.items():
        Image.fromarray(paint_face(astronaut, cx, cy, side)[..., ::-1]).save(server.root / "input" / name)
    return server


def graph(boxes: list[str], prefix: str, width=128, height=128, mirror=(False, True, False), strength=1.0):
    """Load Diffusion Model (FLUX) → RealisID Apply InfiniteYou (people from photos: IR-SE50 identities,
    poses from the same photos) → KSampler (CFG 1, FLUX-dev's way; one step) → VAE decode → save."""
    from comfy_execution.graph_utils import GraphBuilder
    g = GraphBuilder(prefix="")
    model = g.node("UNETLoader", unet_name="flux_test_dev.safetensors", weight_dtype="default").out(0)
    vae = g.node("VAELoader", vae_name="flux_test_ae.safetensors").out(0)
    positive = g.node("RealisIDTest_FluxConditioning", seed=1, guidance=3.5).out(0)
    negative = g.node("RealisIDTest_FluxConditioning", seed=2, guidance=3.5).out(0)
    control_net = g.node("RealisID_LoadInfuseNet", infusenet_name=INFUSENET).out(0)
    projector = g.node("RealisID_LoadInfiniteYouProjector", projector_name="aes_stage2/image_proj_model.bin").out(0)
    recogniser = g.node("RealisID_LoadFaceRecogniser", recogniser_name="recognition_arcface_ir_se50.pth").out(0)
    analyzer = g.node("RealisID_FaceAnalysisLoader", pack="antelopev2", provider="CPU", detection_size="640").out(0)
    people = {}
    photos = list(PHOTOS)
    for k, box in enumerate(boxes):
        photo = g.node("LoadImage", image=photos[k]).out(0)
        identity = g.node("RealisID_IdentityIRSE50", analyzer=analyzer, recogniser=recogniser, images=photo,
                          photo_without_face="error").out(0)
        faces = g.node("RealisID_FaceAnalysis", analyzer=analyzer, images=photo, selection="largest", index=0,
                       threshold=0.5, require_face=True).out(0)
        pose = g.node("RealisID_PoseExpression", driving_faces=faces, face_number=1, mirror=mirror[k]).out(0)
        people[f"person_{k + 1}"] = g.node("RealisID_Person", location_number=1, box=box, strength=1.0,
                                           identity=identity, pose=pose).out(0)
    crowd = g.node("RealisID_People", **people).out(0)
    applied = g.node("RealisID_ApplyInfiniteYou", model=model, positive=positive, negative=negative,
                     control_net=control_net, projector=projector, people=crowd, vae=vae, strength=strength,
                     start_percent=0.0, end_percent=1.0, working_size=32, feather=0.15, infusenet_guidance=1.0)
    latent = g.node("EmptySD3LatentImage", width=width, height=height, batch_size=1).out(0)
    sampled = g.node("KSampler", model=model, seed=3, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                     positive=applied.out(0), negative=applied.out(1), latent_image=latent, denoise=1.0).out(0)
    g.node("SaveImage", images=g.node("VAEDecode", samples=sampled, vae=vae).out(0), filename_prefix=prefix)
    return g.finalize()


def test_nodes_are_registered(infiniteyou_server):
    info = infiniteyou_server.object_info()
    assert INFUSENET in info["RealisID_LoadInfuseNet"]["input"]["required"]["infusenet_name"][0]
    assert info["RealisID_ApplyInfiniteYou"]["display_name"] == "RealisID Apply InfiniteYou"
    assert "recognition_arcface_ir_se50.pth" in \
        info["RealisID_LoadFaceRecogniser"]["input"]["required"]["recogniser_name"][0]


def test_one_small_face_in_a_wide_shot(infiniteyou_server):
    steered = one_picture(infiniteyou_server, graph(["0.62 0.4 0.12 0.12"], "infiniteyou_one_face"))
    plain = one_picture(infiniteyou_server, graph(["0.62 0.4 0.12 0.12"], "infiniteyou_off", strength=0.0))
    assert not np.array_equal(steered, plain)  # InfuseNet's residuals reached FLUX


def test_three_people_each_with_their_own_photo_and_pose(infiniteyou_server):
    one_picture(infiniteyou_server, graph(["0.2 0.45 0.16 0.16", "0.5 0.4 0.14 0.14", "0.8 0.5 0.18 0.18"],
                                            "infiniteyou_three_faces"))


def test_an_antelopev2_identity_is_refused_by_name(infiniteyou_server):
    from fixtures.comfy_server import PromptFailed
    spec = graph(["0.5 0.4 0.2 0.2"], "infiniteyou_wrong_identity")
    node = next(k for k, v in spec.items() if v["class_type"] == "RealisID_IdentityIRSE50")
    analyzer = spec[node]["inputs"]["analyzer"]
    spec[node] = {"class_type": "RealisID_Identity", "inputs": {"analyzer": analyzer,
                                                                "images": spec[node]["inputs"]["images"],
                                                                "photo_without_face": "error"}}
    with pytest.raises(PromptFailed) as refused:
        infiniteyou_server.run(spec)
    assert "antelopev2 recogniser" in str(refused.value.details) and "IR-SE50" in str(refused.value.details)
