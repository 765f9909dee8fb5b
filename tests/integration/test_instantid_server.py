"""InstantID through RealisID in a real ComfyUI server: one small face in a wide shot, and three
people each from their own photo with their own pose, on the SDXL-shaped (Segmind Vega) model
with an IdentityNet built by diffusers and InstantID's ip-adapter.bin layout (random weights).

The IdentityNet copy carries a RealisID description at working size 16 (128-pixel hints) so the
crops stay cheap on a CPU; RealisID Load ControlNet reads it from the file.
"""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures import instantid_models
from fixtures.comfy_server import one_picture

PHOTOS = {"instantid_person_1.png": (384, 128, 60), "instantid_person_2.png": (128, 384, 56),
          "instantid_person_3.png": (256, 256, 64)}


@pytest.fixture(scope="module")
def instantid_server(server):
    pytest.importorskip("diffusers")
    pytest.importorskip("insightface")
    pytest.importorskip("onnx")
    skimage_data = pytest.importorskip("skimage.data")
    from fixtures.fake_insightface import fake_insightface_root, paint_face
    from fixtures.host import pack_module
    description = pack_module("realisid_core.models.description")
    small = description.BranchDescription("local", "SDXL", hint_format="instantid-kps", working_size=16, margin=2.0,
                                          name="InstantID IdentityNet (test copy, working size 16)")
    identitynet = instantid_models.described_copy(
        instantid_models.identitynet_folder() / "diffusion_pytorch_model.safetensors", small.to_metadata(),
        "instantid_identitynet_ws16.safetensors")
    links = {"diffusion_models/instantid_test_vega.safetensors": instantid_models.vega_unet(),
             "controlnet/instantid_test/identitynet_ws16.safetensors": identitynet,
             "instantid/ip-adapter.bin": instantid_models.ip_adapter_bin(),
             "insightface/models/antelopev2": Path(fake_insightface_root()) / "models" / "antelopev2"}
    server.link_models(links)
    astronaut = np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])
    for name, (cx, cy, side) in PHOTOS.items():
        Image.fromarray(paint_face(astronaut, cx, cy, side)[..., ::-1]).save(server.root / "input" / name)
    return server


def graph(boxes: list[str], prefix: str, width=128, height=128, mirror=(False, True, False)):
    """UNETLoader (Vega) → RealisID Apply InstantID (people from photos, poses from the same photos)
    → KSampler (CFG 2, one step: both sides of CFG, kept cheap) → VAE decode → save."""
    from comfy_execution.graph_utils import GraphBuilder
    g = GraphBuilder(prefix="")
    model = g.node("UNETLoader", unet_name="instantid_test_vega.safetensors", weight_dtype="default").out(0)
    vae = g.node("CheckpointLoaderSimple", ckpt_name="tiny_sd15.safetensors").out(2)
    positive = g.node("RealisIDTest_SDXLConditioning", seed=1, width=width, height=height).out(0)
    negative = g.node("RealisIDTest_SDXLConditioning", seed=2, width=width, height=height).out(0)
    control_net = g.node("RealisID_LoadControlNet", control_net_name="instantid_test/identitynet_ws16.safetensors",
                         kind="auto (from the file)").out(0)
    adapter = g.node("RealisID_InstantIDLoader", adapter_name="ip-adapter.bin").out(0)
    analyzer = g.node("RealisID_FaceAnalysisLoader", pack="antelopev2", provider="CPU", detection_size="640").out(0)
    people = {}
    photos = list(PHOTOS)
    for k, box in enumerate(boxes):
        photo = g.node("LoadImage", image=photos[k]).out(0)
        identity = g.node("RealisID_Identity", analyzer=analyzer, images=photo, photo_without_face="error").out(0)
        faces = g.node("RealisID_FaceAnalysis", analyzer=analyzer, images=photo, selection="largest", index=0,
                       threshold=0.5, require_face=True).out(0)
        pose = g.node("RealisID_PoseExpression", driving_faces=faces, face_number=1, mirror=mirror[k]).out(0)
        people[f"person_{k + 1}"] = g.node("RealisID_Person", location_number=1, box=box, strength=1.0,
                                           identity=identity, pose=pose).out(0)
    crowd = g.node("RealisID_People", **people).out(0)
    applied = g.node("RealisID_ApplyInstantID", model=model, positive=positive, negative=negative,
                     control_net=control_net, instantid=adapter, people=crowd, cn_strength=0.8, cn_start_percent=0.0,
                     cn_end_percent=1.0, ip_weight=0.8, ip_start_percent=0.0, ip_end_percent=1.0,
                     working_size="as trained", feather=0.15, region_margin=1.5)
    latent = g.node("EmptyLatentImage", width=width, height=height, batch_size=1).out(0)
    sampled = g.node("KSampler", model=applied.out(0), seed=3, steps=1, cfg=2.0, sampler_name="euler",
                     scheduler="normal", positive=applied.out(1), negative=applied.out(2), latent_image=latent,
                     denoise=1.0).out(0)
    g.node("SaveImage", images=g.node("VAEDecode", samples=sampled, vae=vae).out(0), filename_prefix=prefix)
    return g.finalize()


def test_nodes_are_registered(instantid_server):
    info = instantid_server.object_info()
    loader, apply = info["RealisID_InstantIDLoader"], info["RealisID_ApplyInstantID"]
    assert loader["display_name"] == "RealisID Load InstantID Adapter" and loader["category"] == "RealisID/loaders"
    assert "ip-adapter.bin" in loader["input"]["required"]["adapter_name"][0]
    assert apply["display_name"] == "RealisID Apply InstantID"
    assert apply["output"] == ["MODEL", "CONDITIONING", "CONDITIONING"]


def test_one_small_face_in_a_wide_shot(instantid_server):
    one_picture(instantid_server, graph(["0.62 0.4 0.12 0.12"], "instantid_one_face"))


def test_three_people_each_with_their_own_photo_and_pose(instantid_server):
    one_picture(instantid_server, graph(["0.2 0.45 0.16 0.16", "0.5 0.4 0.14 0.14", "0.8 0.5 0.18 0.18"],
                                          "instantid_three_faces"))


def test_a_missing_adapter_is_refused_naming_the_folder(instantid_server):
    from fixtures.comfy_server import PromptFailed
    spec = graph(["0.5 0.4 0.2 0.2"], "instantid_missing")
    loader = next(k for k, v in spec.items() if v["class_type"] == "RealisID_InstantIDLoader")
    spec[loader]["inputs"]["adapter_name"] = "not-there.bin"
    with pytest.raises(PromptFailed) as refused:
        instantid_server.submit(spec)
    text = str(refused.value.details)
    assert "'not-there.bin' was not found in the InstantID folder(s)" in text and "models/instantid" in text
